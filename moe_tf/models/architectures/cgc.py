"""Customized gate control (the one-level PLE)."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.architectures.base import ExpertArchitecture
from moe_tf.registry import ARCHITECTURES


@ARCHITECTURES.register("cgc")
@keras.saving.register_keras_serializable(package="moe_tf")
class CGC(ExpertArchitecture):
    """`experts.count` shared experts plus `task_experts` experts per task; task t's gate mixes its own experts and
    the shared ones, so each task keeps capacity no other task's gradient reaches.

    Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task Learning (MTL) Model for Personalized
    Recommendations", RecSys 2020 (section 4.2).
    """

    class Config(StrictModel):
        type: Literal["cgc"] = Field(
            "cgc",
            description="shared experts plus experts only one task reaches; each task's gate mixes the shared experts "
            "and its own, so a task keeps capacity the others cannot overwrite (Tang et al. 2020); for "
            "conflicting tasks (seesaw effect)",
        )
        task_experts: int = Field(1, ge=1, description="experts of each task's own group")

    def __init__(self, task_names, experts, gate, task_experts=1, **kwargs):
        super().__init__(task_names, experts, gate, task_experts=task_experts, **kwargs)
        self.task_experts = int(task_experts)

    def get_config(self):
        return {**super().get_config(), "task_experts": self.task_experts}
