"""Single-task baseline: an independent network per task."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.architectures.base import UngatedArchitecture
from moe_tf.models.layers import DenseStack
from moe_tf.registry import ARCHITECTURES


@ARCHITECTURES.register("single_task")
@keras.saving.register_keras_serializable(package="moe_tf")
class SingleTask(UngatedArchitecture):
    """Nothing is shared: each task has its own encoders (stems), trunk and an MLP shaped like one expert
    (`model.experts.units`), so training them together equals training each alone (the baseline MTL papers
    report). `experts.count` and `gate` are unused.
    """

    independent = True  # the model builds encoders and a trunk per task and passes {task: features}

    class Config(StrictModel):
        type: Literal["single_task"] = Field(
            "single_task",
            description="a whole network per task (its own stems, trunk and MLP), nothing shared: the baseline every "
            "multi-task paper reports; training the tasks together equals training each alone",
        )

    def __init__(self, task_names, experts, **kwargs):
        super().__init__(task_names, experts, **kwargs)
        self.networks = {
            t: DenseStack(self.experts_config.units, self.activation, self.dropout, self.l2, name=f"network_{t}")
            for t in self.task_names
        }

    def call(self, x, training=None):
        return {t: self.networks[t](x[t], training=training) for t in self.task_names}, {}

    def task_variables(self, name: str) -> list:
        return list(self.networks[name].trainable_variables)
