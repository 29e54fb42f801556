"""Static task weights: total = Σ_t α_t · L_t, one backward pass."""

from __future__ import annotations

from typing import Literal

from moe_tf.config.base import StrictModel
from moe_tf.training.weightings import WEIGHTINGS
from moe_tf.training.weightings.base import Weighting, gradient


@WEIGHTINGS.register("fixed")
class FixedWeighting(Weighting):
    """The weighted sum with each task's configured `weight` (α_t), differentiated once."""

    class Config(StrictModel):
        type: Literal["fixed"] = "fixed"

    def objectives(self, task_losses, extra_loss, scale):
        total = self.total(task_losses)
        return scale(total if extra_loss is None else total + extra_loss)

    def gradients(self, tape, objectives, groups):
        return gradient(tape, objectives, groups.all)
