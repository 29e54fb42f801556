"""The expert blocks as layers of their own (moe_tf.layers): MixtureOfExperts and its named forms MMoE, OMoE, CGC
and PLE, one output per task, for models built outside a config. moe-tf's own models use ExpertArchitecture (which
these wrap) through `model.architecture`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops
from pydantic import ValidationError

from moe_tf.config.base import one_of, plain, typed
from moe_tf.models.architectures.base import ExpertArchitecture
from moe_tf.models.mixture import SHARED
from moe_tf.registry import GATES


@keras.saving.register_keras_serializable(package="moe_tf")
class MixtureOfExperts(keras.layers.Layer):
    """Levels of experts with gates over them, one output per task: the general form of MMoE, OMoE, CGC and PLE
    (use those for their own arguments).

    Args:
        tasks: the task names; the output holds one feature tensor per task.
        num_experts: shared experts in each level.
        expert_units: each expert's MLP widths; the outputs have `expert_units[-1]` features.
        gate: "softmax", "noisy_top_k", "switch" or "expert_choice", or a mapping with `type` and the gate's
            arguments, e.g. {"type": "noisy_top_k", "k": 2, "load_loss": 0.01} (the config's `model.gate`).
        task_experts: experts of each task's own in each level (CGC, PLE); 0 for MMoE.
        levels: stacked levels; all but the top one also pass a shared representation up (PLE).
        task_gates: a gate per task; False shares one gate among the tasks (OMoE).
        activation: the experts' activation.
        dropout: the experts' dropout rate (training only).
        l2: the L2 penalty on the experts' kernels.
        return_gate_weights: also return {task: the weights of its gate, [batch, experts]}.

    Call: x [batch, features] → {task: [batch, expert_units[-1]]}, and with `return_gate_weights`
    ({task: features}, {task: [batch, experts]}). Experts are laid out [shared..., task_1's..., ...]: a task's gate
    weights are zero for the experts it cannot choose. The gates' auxiliary losses (already multiplied by their
    coefficients) are added with `add_loss`: `fit` minimises them with the task losses.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        num_experts: int = 4,
        expert_units: Sequence[int] = (64,),
        gate: str | Mapping[str, Any] = "softmax",
        task_experts: int = 0,
        levels: int = 1,
        task_gates: bool = True,
        activation: str = "relu",
        dropout: float = 0.0,
        l2: float = 0.0,
        return_gate_weights: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(tasks, str) or not tasks or len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks: expected a list of distinct task names, got {tasks!r}")
        for name, value, least in (
            ("num_experts", num_experts, 1),
            ("task_experts", task_experts, 0),
            ("levels", levels, 1),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{name}: expected an integer >= {least}, got {value!r}")
        if not expert_units or any(not isinstance(u, int) or u < 1 for u in expert_units):
            raise ValueError(f"expert_units: expected a non-empty list of positive widths, got {expert_units!r}")
        self.tasks = list(tasks)
        self.num_experts, self.expert_units = int(num_experts), list(expert_units)
        self.gate_config = gate_config(gate)
        self.task_experts, self.levels, self.task_gates = int(task_experts), int(levels), bool(task_gates)
        self.activation, self.dropout, self.l2 = activation, float(dropout), float(l2)
        self.return_gate_weights = bool(return_gate_weights)
        self.block = ExpertArchitecture(
            self.tasks,
            {"count": self.num_experts, "units": self.expert_units},
            self.gate_config,
            activation=activation,
            dropout=dropout,
            l2=l2,
            levels=self.levels,
            task_experts=self.task_experts,
            task_gates=self.task_gates,
            name="experts",
        )

    def build(self, input_shape):
        """Builds every level (so a `.keras` file's weights load into a model that has not run yet)."""
        shape = {SHARED: tuple(input_shape)}
        for level in self.block.levels:
            level.build(shape)
            shape = {g: (input_shape[0], level.expert_units[-1]) for g in (SHARED, *self.tasks)}
        self.block.built = True

    def call(self, x, training=None):
        features, routes = self.block(x, training=training)
        aux = [ops.cast(value, "float32") for route in routes.values() for value in route["aux"].values()]
        if training and aux:  # regularisers of the routing: minimised in training, not part of an evaluation's loss
            self.add_loss(ops.sum(ops.stack(aux)))
        if not self.return_gate_weights:
            return features
        gates = self.block.task_gates()
        return features, {t: routes[gates[t]]["weights"] for t in self.tasks}

    def compute_output_spec(self, x, training=None):
        width = self.expert_units[-1]
        features = {t: keras.KerasTensor((x.shape[0], width), dtype=self.compute_dtype) for t in self.tasks}
        if not self.return_gate_weights:
            return features
        experts = self.block.levels[-1].num_experts
        return features, {t: keras.KerasTensor((x.shape[0], experts), dtype="float32") for t in self.tasks}

    def gate_weights(self, x) -> dict:
        """{task: the weights of its gate, [batch, experts]} for inputs `x`, in inference mode."""
        if not self.built:
            self.build(tuple(x.shape))
        _, routes = self.block(x, training=False)
        gates = self.block.task_gates()
        return {t: routes[gates[t]]["weights"] for t in self.tasks}

    def expert_names(self) -> list[str]:
        """The experts of the top level in the layout of the gate weights: shared_0…, then <task>_0… per task."""
        return self.block.levels[-1].expert_names()

    def get_config(self):
        return {
            **super().get_config(),
            "tasks": self.tasks,
            "num_experts": self.num_experts,
            "expert_units": self.expert_units,
            "gate": plain(self.gate_config),
            "task_experts": self.task_experts,
            "levels": self.levels,
            "task_gates": self.task_gates,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
            "return_gate_weights": self.return_gate_weights,
        }


def gate_config(gate: str | Mapping[str, Any]):
    """A gate's name or mapping as its config object; a ValueError naming the bad argument otherwise."""
    try:
        return typed(one_of(GATES), {"type": gate} if isinstance(gate, str) else dict(gate))
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ValueError(f"gate {gate!r}: {problems}") from None
    except ValueError as e:  # an unknown type
        raise ValueError(f"gate {gate!r}: {e}") from None


def _only(config: dict, *names: str) -> dict:
    """`config` without the arguments a subclass fixes (`names`)."""
    return {k: v for k, v in config.items() if k not in names}


def _refuse(block: str, kwargs: dict, *names: str) -> None:
    """A TypeError for an argument `block` fixes (its saved config could not rebuild it)."""
    given = sorted(set(kwargs) & set(names))
    if given:
        raise TypeError(
            f"{block} fixes {', '.join(given)}; use MixtureOfExperts to set {'them' if len(given) > 1 else 'it'}"
        )


@keras.saving.register_keras_serializable(package="moe_tf")
class MMoE(MixtureOfExperts):
    """Multi-gate mixture of experts (Ma et al., KDD 2018): shared experts, a gate per task.

    Takes the arguments of `MixtureOfExperts` but `task_experts`, `levels` and `task_gates`.
    """

    def __init__(self, tasks, num_experts=4, expert_units=(64,), gate="softmax", **kwargs):
        _refuse("MMoE", kwargs, "task_experts", "levels", "task_gates")
        super().__init__(tasks, num_experts, expert_units, gate, **kwargs)

    def get_config(self):
        return _only(super().get_config(), "task_experts", "levels", "task_gates")


@keras.saving.register_keras_serializable(package="moe_tf")
class OMoE(MixtureOfExperts):
    """One-gate mixture of experts: shared experts and one gate that every task reads.

    Takes the arguments of `MMoE`.
    """

    def __init__(self, tasks, num_experts=4, expert_units=(64,), gate="softmax", **kwargs):
        _refuse("OMoE", kwargs, "task_experts", "levels", "task_gates")
        super().__init__(tasks, num_experts, expert_units, gate, task_gates=False, **kwargs)

    def get_config(self):
        return _only(super().get_config(), "task_experts", "levels", "task_gates")


@keras.saving.register_keras_serializable(package="moe_tf")
class CGC(MixtureOfExperts):
    """Customized gate control (Tang et al., RecSys 2020): shared experts, experts of each task's own, and a gate
    per task over the shared experts and its own.

    Takes the arguments of `MixtureOfExperts` but `levels` and `task_gates`; `num_experts` counts the shared experts
    (default 2) and `task_experts` each task's own (default 1).
    """

    def __init__(self, tasks, num_experts=2, expert_units=(64,), gate="softmax", task_experts=1, **kwargs):
        _refuse("CGC", kwargs, "levels", "task_gates")
        super().__init__(tasks, num_experts, expert_units, gate, task_experts=task_experts, **kwargs)

    def get_config(self):
        return _only(super().get_config(), "levels", "task_gates")


@keras.saving.register_keras_serializable(package="moe_tf")
class PLE(MixtureOfExperts):
    """Progressive layered extraction (Tang et al., RecSys 2020): `levels` stacked CGC levels; below the top, a
    shared gate over every expert passes a shared representation up.

    Takes the arguments of `CGC`, and `levels`: the stacked levels (default 2).
    """

    def __init__(self, tasks, num_experts=2, expert_units=(64,), gate="softmax", task_experts=1, levels=2, **kwargs):
        _refuse("PLE", kwargs, "task_gates")
        super().__init__(tasks, num_experts, expert_units, gate, task_experts=task_experts, levels=levels, **kwargs)

    def get_config(self):
        return _only(super().get_config(), "task_gates")
