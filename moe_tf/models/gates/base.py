"""What every gate shares: router logits from the features, the optional z-loss, and the routing it returns.

A gate maps features [batch, d] to a routing dict:
  weights   float32 [batch, experts]: each example's combine weight per expert (zeros for experts not chosen);
  aux       {loss name: scalar}: auxiliary losses, already multiplied by their coefficients;
and, for sparse gates (`sparse = True`), the dispatch of moe_tf.models.routing:
  slot_example int32 [experts, capacity], slot_weight float32 [experts, capacity],
  unrouted  bool [batch]: examples no expert processed (they take the skip path),
  dropped   float32 scalar: assignments dropped by capacity; assignments: float32 scalar, all assignments.
Gates compute in float32 under mixed precision, so routing and its statistics stay exact.
"""

from __future__ import annotations

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models import routing


class GateConfig(StrictModel):
    """Fields every gate takes."""

    z_loss: float = Field(
        0.0, ge=0.0, description="router z-loss coefficient (mean of logsumexp(logits)², ST-MoE); 0 disables it"
    )


class Gate(keras.layers.Layer):
    """Base gate: a dense layer of router logits, one per expert."""

    sparse = False

    def __init__(self, num_experts, z_loss=0.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.z_loss = float(z_loss)
        self.logits = keras.layers.Dense(self.num_experts, name="logits", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.logits.build(input_shape)

    def aux_losses(self, logits) -> dict:
        """The losses every gate may add (the z-loss when its coefficient is set)."""
        return {"z_loss": self.z_loss * routing.z_loss(logits)} if self.z_loss else {}

    def get_config(self):
        return {**super().get_config(), "num_experts": self.num_experts, "z_loss": self.z_loss}
