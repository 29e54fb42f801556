"""The dense softmax gate of MMoE."""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops
from pydantic import Field

from moe_tf.models.gates.base import Gate, GateConfig
from moe_tf.registry import GATES


@GATES.register("softmax")
@keras.saving.register_keras_serializable(package="moe_tf")
class SoftmaxGate(Gate):
    """g(x) = softmax(W x / temperature): every expert runs on every example, weighted (dense).

    Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018.

    Call: x [batch, features] → {"weights": [batch, experts], "aux": {...}}.
    """

    class Config(GateConfig):
        type: Literal["softmax"] = Field(
            "softmax", description="softmax(W x / T) over all experts (MMoE); dense: every expert runs on every example"
        )
        temperature: float = Field(1.0, gt=0.0, description="softmax temperature T")

    def __init__(self, num_experts, temperature=1.0, **kwargs):
        super().__init__(num_experts, **kwargs)
        self.temperature = float(temperature)

    def call(self, x, training=None):
        logits = self.logits(x)
        return {"weights": ops.softmax(logits / self.temperature, axis=-1), "aux": self.aux_losses(logits)}

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
