"""Static task weights: total = Σ_t α_t · L_t."""

from __future__ import annotations

from typing import Literal

import tensorflow as tf

from moe_tf.config.base import StrictModel
from moe_tf.training.weightings import WEIGHTINGS
from moe_tf.training.weightings.base import Weighting


@WEIGHTINGS.register("fixed")
class FixedWeighting(Weighting):
    """The weighted sum with each task's configured `weight` (α_t)."""

    class Config(StrictModel):
        type: Literal["fixed"] = "fixed"

    def combine(self, task_losses):
        weights = {name: tf.constant(self.task_weights[name], tf.float32) for name in task_losses}
        total = tf.add_n([weights[name] * loss for name, loss in task_losses.items()])
        return total, weights
