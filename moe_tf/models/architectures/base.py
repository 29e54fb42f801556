"""What the expert-based architectures share: levels of experts, the routing they report, and which variables
belong to one task."""

from __future__ import annotations

import keras

from moe_tf.config.base import one_of, plain, typed
from moe_tf.config.schema import ExpertsConfig
from moe_tf.models.mixture import SHARED, ExpertLevel
from moe_tf.registry import GATES


class UngatedArchitecture(keras.layers.Layer):
    """What architectures without gates share (shared_bottom, single_task): no routing to report."""

    independent = False
    gated = False  # no experts and no gates: `model.gate` and `model.experts.count` do not apply

    def __init__(self, task_names, experts, gate=None, activation="relu", dropout=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.experts_config = typed(ExpertsConfig, experts)
        self.activation, self.dropout, self.l2 = activation, dropout, l2

    def task_gates(self) -> dict[str, str]:
        return {}

    def expert_names(self) -> dict[str, list[str]]:
        return {}

    def expert_backbones(self) -> list:
        return []

    def part_layers(self, part: str) -> list:
        """The layers of `part` ("experts" or "gates"): the shared block counts as the experts."""
        shared = getattr(self, "shared", None)
        return [shared] if part == "experts" and shared is not None else []

    def has_representation(self) -> bool:
        return False

    def last_shared_variables(self) -> list:
        return []

    def get_config(self):
        return {
            **super().get_config(),
            "task_names": self.task_names,
            "experts": plain(self.experts_config),
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
        }


class ExpertArchitecture(keras.layers.Layer):
    """A stack of ExpertLevels (one for OMoE, MMoE and CGC; several for PLE).

    Args:
        task_names, experts (`model.experts`), gate (`model.gate`), activation, dropout, l2: see the package
            docstring.
        levels: how many levels; all but the top one also output a shared representation (PLE).
        task_experts: experts per task in each level (CGC/PLE).
        task_gates: a gate per task (false: one shared gate, OMoE).
        raw_backbone, gate_width: experts of the first level read the raw inputs (see ExpertLevel); the call then
            takes the raw inputs and `gate_input`.
    """

    independent = False
    gated = True

    def __init__(
        self,
        task_names,
        experts,
        gate,
        activation="relu",
        dropout=0.0,
        l2=0.0,
        levels=1,
        task_experts=0,
        task_gates=True,
        raw_backbone=None,
        gate_width=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.experts_config = typed(ExpertsConfig, experts)
        self.gate_config = typed(one_of(GATES), gate)
        self.activation, self.dropout, self.l2 = activation, dropout, l2
        self.levels = [
            ExpertLevel(
                self.task_names,
                self.experts_config.count,
                task_experts,
                task_gates,
                shared_gate=i < levels - 1,
                expert_units=self.experts_config.units,
                activation=activation,
                dropout=dropout,
                l2=l2,
                gate=self.gate_config,
                name=f"level_{i}",
                **({"raw_backbone": raw_backbone, "gate_width": gate_width} if i == 0 else {}),
            )
            for i in range(levels)
        ]

    def _gate_name(self, level: int, gate: str) -> str:
        return gate if level == len(self.levels) - 1 else f"level{level}_{gate}"

    def call(self, x, training=None, gate_input=None, representation=False):
        """Returns (features {task: [batch, units]}, routes {gate: ...}), and with `representation` also the
        shared input of the top level (what its shared experts read; MGDA-UB differentiates the tasks' losses
        with respect to it)."""
        inputs, routes = {SHARED: x}, {}
        top_input = None
        for i, level in enumerate(self.levels):
            gates = {SHARED: gate_input} if i == 0 and gate_input is not None else None
            top_input = inputs[SHARED]
            inputs, level_routes = level(inputs, training=training, gate_inputs=gates)
            routes.update({self._gate_name(i, g): r for g, r in level_routes.items()})
        features = {t: inputs[t] for t in self.task_names}
        return (features, routes, top_input) if representation else (features, routes)

    def has_representation(self) -> bool:
        """Whether the top level reads one shared tensor (not when single-level experts read the raw inputs)."""
        return len(self.levels) > 1 or self.levels[0].raw_backbone is None

    def last_shared_variables(self) -> list:
        """The last layer of the top level's shared experts (GradNorm measures task gradients there)."""
        return self.levels[-1].pools[SHARED].last_layer_variables()

    def task_gates(self) -> dict[str, str]:
        top = self.levels[-1]
        return {t: top.task_gate(t) for t in self.task_names}

    def expert_names(self) -> dict[str, list[str]]:
        """{gate: labels of the experts in its routing weights}; labels of lower levels start with `level<i>_`."""
        out = {}
        for i, level in enumerate(self.levels):
            names = [self._gate_name(i, n) for n in level.expert_names()]
            out.update({self._gate_name(i, g): names for g in level.gates})
        return out

    def expert_backbones(self) -> list:
        """The backbones inside experts that read the raw inputs (none otherwise)."""
        return [bb for pool in self.levels[0].pools.values() for bb in getattr(pool, "backbones", [])]

    def part_layers(self, part: str) -> list:
        """The layers of `part` ("experts": every expert pool; "gates": every gate) in every level."""
        if part == "experts":
            return [pool for level in self.levels for pool in level.pools.values()]
        return [gate for level in self.levels for gate in level.gates.values()]

    def task_variables(self, name: str) -> list:
        """Task `name`'s gates and its own experts, in every level."""
        out = []
        for level in self.levels:
            if name in level.gates:
                out += level.gates[name].trainable_variables
            # Below the top of PLE a task's experts also feed the shared gate, so every task reaches them.
            if name in level.pools and (level is self.levels[-1] or not level.shared_gate):
                out += level.pools[name].trainable_variables
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "task_names": self.task_names,
            "experts": plain(self.experts_config),
            "gate": plain(self.gate_config),
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
        }
