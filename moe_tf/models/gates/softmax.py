"""The dense softmax gate of MMoE."""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.gates import GATES


@GATES.register("softmax")
@keras.saving.register_keras_serializable(package="moe_tf")
class SoftmaxGate(keras.layers.Layer):
    """g(x) = softmax(W x / temperature), one weight per expert, summing to 1.

    Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018.
    Computed in float32 under mixed precision so gate statistics stay exact.

    Call: x [batch, features] → [batch, experts].
    """

    class Config(StrictModel):
        type: Literal["softmax"] = "softmax"
        temperature: float = Field(1.0, gt=0.0)

    def __init__(self, num_experts, temperature=1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.temperature = float(temperature)
        self.logits = keras.layers.Dense(self.num_experts, name="logits", dtype=self.dtype_policy)

    def call(self, x):
        return ops.softmax(self.logits(x) / self.temperature, axis=-1)  # [batch, experts]

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "temperature": self.temperature}
