"""Expert-choice routing (Zhou et al. 2022): experts pick examples."""

from __future__ import annotations

from typing import Literal

import keras
import tensorflow as tf
from pydantic import Field

from moe_tf.models import routing
from moe_tf.models.gates.base import Gate, GateConfig
from moe_tf.registry import GATES


@GATES.register("expert_choice")
@keras.saving.register_keras_serializable(package="moe_tf")
class ExpertChoiceGate(Gate):
    """Each expert takes the ceil(capacity_factor · batch / experts) examples with the highest probability
    softmax(W x)_e and weighs each by that probability. Load is balanced by construction; an example may be picked
    by several experts or by none (it takes the skip path and is counted as dropped).

    Zhou et al., "Mixture-of-Experts with Expert Choice Routing", NeurIPS 2022. `capacity_factor` is the paper's c,
    the experts an example visits on average.
    """

    sparse = True

    class Config(GateConfig):
        type: Literal["expert_choice"] = Field(
            "expert_choice",
            description="each expert picks its ceil(c · batch / E) most probable examples (Zhou et al. 2022); an "
            "example no expert picks takes the skip path; sparse",
        )
        capacity_factor: float = Field(
            2.0,
            gt=0.0,
            description="c, the average experts per example: each expert picks its ceil(c · batch / E) most "
            "probable examples",
        )

    def __init__(self, num_experts, capacity_factor=2.0, **kwargs):
        super().__init__(num_experts, **kwargs)
        self.capacity_factor = float(capacity_factor)

    def call(self, x, training=None):
        logits = self.logits(x)
        probs = tf.nn.softmax(logits, axis=-1)  # [batch, E]
        batch = tf.shape(x)[0]
        slots = routing.capacity(batch, 1, self.num_experts, self.capacity_factor)
        slot_weight, slot_example = tf.math.top_k(tf.transpose(probs), k=slots)  # [E, C] each
        picked = tf.scatter_nd(
            tf.reshape(slot_example, [-1, 1]), tf.ones_like(tf.reshape(slot_weight, [-1])), [batch]
        )  # [batch]: experts that picked the example
        chosen = tf.scatter_nd(
            tf.stack([tf.reshape(slot_example, [-1]), tf.repeat(tf.range(self.num_experts), slots)], axis=1),
            tf.ones_like(tf.reshape(slot_weight, [-1])),
            tf.shape(probs),
        )
        unrouted = picked == 0
        return {
            "weights": probs * chosen,
            "aux": self.aux_losses(logits),
            "slot_example": slot_example,
            "slot_weight": slot_weight,
            "unrouted": unrouted,
            "dropped": tf.reduce_sum(tf.cast(unrouted, tf.float32)),
            "assignments": tf.cast(batch, tf.float32),
        }

    def get_config(self):
        return {**super().get_config(), "capacity_factor": self.capacity_factor}
