"""Shared-bottom multi-task learning: one shared network, a tower per task, no gates."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.architectures.base import UngatedArchitecture
from moe_tf.models.layers import DenseStack
from moe_tf.registry import ARCHITECTURES


@ARCHITECTURES.register("shared_bottom")
@keras.saving.register_keras_serializable(package="moe_tf")
class SharedBottom(UngatedArchitecture):
    """Every task reads the same representation (Caruana, "Multitask Learning", 1997).

    The shared block has the shape of one expert (`model.experts.units`); `experts.count` and `gate` are unused.
    """

    class Config(StrictModel):
        type: Literal["shared_bottom"] = Field(
            "shared_bottom",
            description="one shared block (`model.experts.units`) under the task towers; cheapest; works when the "
            "tasks are closely related",
        )

    def __init__(self, task_names, experts, **kwargs):
        super().__init__(task_names, experts, **kwargs)
        self.shared = DenseStack(self.experts_config.units, self.activation, self.dropout, self.l2, name="shared")

    def call(self, x, training=None, representation=False):
        h = self.shared(x, training=training)
        features = {name: h for name in self.task_names}
        return (features, {}, h) if representation else (features, {})

    def has_representation(self) -> bool:
        return True

    def last_shared_variables(self) -> list:
        return self.shared.last_layer_variables()

    def task_variables(self, name: str) -> list:
        return []
