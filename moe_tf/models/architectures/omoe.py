"""One-gate mixture-of-experts."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.architectures.base import ExpertArchitecture
from moe_tf.registry import ARCHITECTURES


@ARCHITECTURES.register("omoe")
@keras.saving.register_keras_serializable(package="moe_tf")
class OMoE(ExpertArchitecture):
    """A shared pool of experts and one gate that every task reads (the baseline MMoE is compared with).

    Ma et al., KDD 2018, section 4 ("OMoE"). Its routing is reported under the gate name `shared`.
    """

    class Config(StrictModel):
        type: Literal["omoe"] = Field(
            "omoe",
            description="one gate for all tasks over a pool of experts; the control for MMoE's per-task gates (Ma et "
            "al. 2018)",
        )

    def __init__(self, task_names, experts, gate, **kwargs):
        kwargs.pop("task_gates", None)
        super().__init__(task_names, experts, gate, task_gates=False, **kwargs)
