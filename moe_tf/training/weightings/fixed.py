"""Static task weights: total = Σ_t α_t · L_t, one backward pass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.weightings.base import LossWeighting


@WEIGHTINGS.register("fixed")
class FixedWeighting(LossWeighting):
    """The weighted sum with each task's configured `weight` (α_t), differentiated once."""

    class Config(StrictModel):
        type: Literal["fixed"] = Field("fixed", description="Σ_t α_t L_t; one backward pass")
