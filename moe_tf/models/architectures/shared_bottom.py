"""Shared-bottom multi-task learning: one shared network, a tower per task, no gates."""

from __future__ import annotations

import keras

from moe_tf.models.architectures import ARCHITECTURES
from moe_tf.models.layers import DenseStack


@ARCHITECTURES.register("shared_bottom")
@keras.saving.register_keras_serializable(package="moe_tf")
class SharedBottom(keras.layers.Layer):
    """Every task reads the same representation (Caruana, "Multitask Learning", 1997).

    The shared block has the shape of one expert (`model.experts.units`); `experts.count` and `gate` are unused.

    Call: x [batch, features] → ({task: [batch, units[-1]]}, {}).
    """

    def __init__(self, task_names, expert_units=(64,), activation="relu", dropout=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.expert_units = list(expert_units)
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        self.shared = DenseStack(self.expert_units, activation, dropout, l2, name="shared")

    def call(self, x, training=None):
        h = self.shared(x, training=training)
        return {name: h for name in self.task_names}, {}

    def task_variables(self, name: str) -> list:
        """Nothing here is one task's alone."""
        return []

    def get_config(self):
        return {**super().get_config(), "task_names": self.task_names, "expert_units": self.expert_units,
                "activation": self.activation, "dropout": self.dropout, "l2": self.l2}
