"""Multi-gate mixture-of-experts."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.architectures.base import ExpertArchitecture
from moe_tf.registry import ARCHITECTURES


@ARCHITECTURES.register("mmoe")
@keras.saving.register_keras_serializable(package="moe_tf")
class MMoE(ExpertArchitecture):
    """A shared pool of `experts.count` experts and one gate per task: task t reads Σ_e g_t(x)_e · expert_e(x).

    Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018.
    """

    class Config(StrictModel):
        type: Literal["mmoe"] = Field(
            "mmoe",
            description="a gate per task over a shared pool of experts (Ma et al. 2018); the default; helps as task "
            "correlation falls",
        )

    def __init__(self, task_names, experts, gate, **kwargs):
        super().__init__(task_names, experts, gate, **kwargs)
