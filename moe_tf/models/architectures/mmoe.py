"""Multi-gate mixture-of-experts."""

from __future__ import annotations

import keras
from keras import ops

from moe_tf.models.architectures import ARCHITECTURES
from moe_tf.models.gates import GATES
from moe_tf.models.layers import ExpertPool


@ARCHITECTURES.register("mmoe")
@keras.saving.register_keras_serializable(package="moe_tf")
class MMoE(keras.layers.Layer):
    """A shared pool of experts and one gate per task; task t reads Σ_e g_t(x)_e · expert_e(x).

    Ma et al., "Modeling Task Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018.

    Args:
        task_names: one gate per task.
        num_experts, expert_units, activation, dropout, l2: the expert pool.
        gate: the gate config as a dict (`type` plus that gate's parameters).

    Call: x [batch, features] → ({task: [batch, units[-1]]}, {task: gate weights [batch, experts]}).
    """

    def __init__(self, task_names, num_experts=4, expert_units=(64,), activation="relu", dropout=0.0, l2=0.0,
                 gate=None, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.num_experts = int(num_experts)
        self.expert_units = list(expert_units)
        self.activation = activation
        self.dropout = dropout
        self.l2 = l2
        self.gate = dict(gate or {"type": "softmax"})
        self.experts = ExpertPool(num_experts, expert_units, activation, dropout, l2, name="experts")
        gate_params = {k: v for k, v in self.gate.items() if k != "type"}
        gate_cls = GATES.get(self.gate["type"])
        self.gates = {name: gate_cls(num_experts, name=f"gate_{name}", **gate_params) for name in self.task_names}

    def call(self, x, training=None):
        experts = self.experts(x, training=training)  # [batch, experts, units]
        features, weights = {}, {}
        for name in self.task_names:
            g = self.gates[name](x)  # [batch, experts], float32
            features[name] = ops.einsum("be,beu->bu", ops.cast(g, experts.dtype), experts)  # [batch, units]
            weights[name] = g
        return features, weights

    def task_variables(self, name: str) -> list:
        """The variables only task `name` uses: its gate."""
        return list(self.gates[name].trainable_variables)

    def get_config(self):
        return {**super().get_config(), "task_names": self.task_names, "num_experts": self.num_experts,
                "expert_units": self.expert_units, "activation": self.activation, "dropout": self.dropout,
                "l2": self.l2, "gate": self.gate}
