"""Switch routing (top-1 with capacity; Fedus et al. 2021)."""

from __future__ import annotations

from typing import Literal

import keras
import tensorflow as tf
from pydantic import Field

from moe_tf.models import routing
from moe_tf.models.gates.base import Gate, GateConfig
from moe_tf.registry import GATES


@GATES.register("switch")
@keras.saving.register_keras_serializable(package="moe_tf")
class SwitchGate(Gate):
    """Each example goes to its most probable expert, weighted by that probability p = softmax(W x)_e.

    Fedus et al., "Switch Transformers: Scaling to Trillion Parameter Models with Simple and Efficient Sparsity",
    JMLR 2022. Each expert takes at most ceil(capacity_factor · batch / experts) examples (eval_capacity_factor in
    evaluation); the rest are dropped, counted, and take the skip path. Load-balancing loss
    α · E · Σ_e f_e · P_e, with f_e the fraction of examples whose top-1 is e and P_e the mean probability of e.
    """

    sparse = True

    class Config(GateConfig):
        type: Literal["switch"] = Field(
            "switch",
            description="top-1, weighted by its probability; capacity factor in training and evaluation; overflow "
            "examples take the skip path (identity, or a linear projection when widths differ) and are "
            "counted; balance loss α·E·Σ f·P (Fedus et al. 2021); sparse",
        )
        capacity_factor: float = Field(
            1.25, gt=0.0, description="each expert takes at most ceil(factor · batch / E) examples in training"
        )
        eval_capacity_factor: float = Field(2.0, gt=0.0, description="the same in evaluation and in the export")
        balance_loss: float = Field(0.01, ge=0.0, description="α of the load-balancing loss α·E·Σ f_e·P_e")

    def __init__(self, num_experts, capacity_factor=1.25, eval_capacity_factor=2.0, balance_loss=0.01, **kwargs):
        super().__init__(num_experts, **kwargs)
        self.capacity_factor = float(capacity_factor)
        self.eval_capacity_factor = float(eval_capacity_factor)
        self.balance_loss = float(balance_loss)

    def call(self, x, training=None):
        logits = self.logits(x)
        probs = tf.nn.softmax(logits, axis=-1)  # [batch, E]
        expert = tf.argmax(probs, axis=-1, output_type=tf.int32)  # [batch]
        onehot = tf.one_hot(expert, self.num_experts)
        weights = onehot * probs
        batch = tf.shape(x)[0]
        factor = self.capacity_factor if training else self.eval_capacity_factor
        slots = routing.capacity(batch, 1, self.num_experts, factor)
        slot_example, slot_weight, kept = routing.token_choice_slots(
            expert[:, None], tf.reduce_sum(weights, axis=1, keepdims=True), self.num_experts, slots
        )
        aux = self.aux_losses(logits)
        if self.balance_loss:
            aux["balance"] = self.balance_loss * balance_loss(onehot, probs)
        return {
            "weights": weights,
            "aux": aux,
            "slot_example": slot_example,
            "slot_weight": slot_weight,
            "unrouted": ~kept[:, 0],
            "dropped": tf.reduce_sum(tf.cast(~kept, tf.float32)),
            "assignments": tf.cast(batch, tf.float32),
        }

    def get_config(self):
        return {
            **super().get_config(),
            "capacity_factor": self.capacity_factor,
            "eval_capacity_factor": self.eval_capacity_factor,
            "balance_loss": self.balance_loss,
        }


def balance_loss(onehot, probs):
    """E · Σ_e f_e · P_e (Switch Transformer eq. 4), without α. onehot, probs: [batch, E]."""
    num_experts = tf.cast(tf.shape(probs)[-1], tf.float32)
    return num_experts * tf.reduce_sum(tf.reduce_mean(onehot, axis=0) * tf.reduce_mean(probs, axis=0))
