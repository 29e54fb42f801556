"""Progressive layered extraction: stacked CGC levels."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.architectures.base import ExpertArchitecture
from moe_tf.registry import ARCHITECTURES


@ARCHITECTURES.register("ple")
@keras.saving.register_keras_serializable(package="moe_tf")
class PLE(ExpertArchitecture):
    """`levels` CGC levels. Below the top, each task's gate output feeds that task's experts and gate in the next
    level, and a shared gate over every expert of the level feeds the next level's shared experts.

    Tang et al., RecSys 2020 (section 4.3). Routing of lower levels is reported as `level<i>_<gate>`.
    """

    class Config(StrictModel):
        type: Literal["ple"] = Field(
            "ple",
            description="CGC levels stacked: each task's mixture feeds its experts and gate in the next level, and a "
            "shared gate over all experts of a level feeds the next level's shared experts (Tang et al. "
            "2020); for larger models and strongly conflicting tasks",
        )
        levels: int = Field(2, ge=1, description="stacked CGC levels")
        task_experts: int = Field(1, ge=1, description="experts of each task's own group, in every level")

    def __init__(self, task_names, experts, gate, levels=2, task_experts=1, **kwargs):
        super().__init__(task_names, experts, gate, levels=levels, task_experts=task_experts, **kwargs)
        self.num_levels = int(levels)
        self.task_experts = int(task_experts)

    def get_config(self):
        return {**super().get_config(), "levels": self.num_levels, "task_experts": self.task_experts}
