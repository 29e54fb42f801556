"""Random loss weighting: fresh random task weights every step.

Lin et al., "Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022.
"""

from __future__ import annotations

from typing import Literal

import tensorflow as tf
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.weightings.base import LossWeighting


@WEIGHTINGS.register("rlw")
class RandomLossWeighting(LossWeighting):
    """w = T · softmax(z) with z ~ N(0, I) drawn each step, times α_t. The draw is stateless from
    (`experiment.seed`, step): every replica and worker draws the same weights, and a resumed run continues the
    same sequence (the step counter is checkpointed). Outside training (the eval loss) the weights are their
    expectation, α_t."""

    class Config(StrictModel):
        type: Literal["rlw"] = Field(
            "rlw",
            description="Lin et al. 2022: w = T·softmax(z), z ~ N(0, I) drawn each step from (`experiment.seed`, "
            "step), so replicas, workers and resumed runs agree; the eval loss uses α_t; one backward pass",
        )

    def weight_vector(self, step=None):
        if step is None:
            return self.alpha
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(step, tf.int64)])
        z = tf.random.stateless_normal([len(self.names)], seed, dtype=tf.float32)
        return self.alpha * len(self.names) * tf.nn.softmax(z)
