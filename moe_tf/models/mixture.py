"""One level of experts with gates over them: the building block of OMoE, MMoE, CGC and PLE.

A level holds a shared group of experts and, optionally, a group per task. Each gate reads one input and chooses
among the groups it sees: an MMoE task gate sees the shared group; a CGC/PLE task gate sees the shared group and
its task's group; PLE's shared gate sees every group. Experts are laid out as [shared..., task_1..., task_2...]
for telemetry; a gate's weights are reported in that layout (zeros for experts it cannot choose).

Dense gates run every expert of a group once per call and mix the outputs. Sparse gates dispatch: each expert
runs only on the rows routed to it (moe_tf.models.routing), and examples no expert took get the skip path
(identity, or a linear projection when the input and expert widths differ).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from moe_tf.config.base import one_of, plain, typed
from moe_tf.models.encoder_experts import EncoderExperts
from moe_tf.models.layers import ExpertPool
from moe_tf.models.routing import routed_counts
from moe_tf.registry import GATES

SHARED = "shared"


@keras.saving.register_keras_serializable(package="moe_tf")
class ExpertLevel(keras.layers.Layer):
    """Args:
        task_names: the tasks.
        shared_experts: experts in the shared group.
        task_experts: experts in each task's group (0: none, as in MMoE/OMoE).
        task_gates: one gate per task (false: one gate named "shared", read by every task, as in OMoE).
        shared_gate: also output a shared representation through a gate over every expert (PLE below the top).
        expert_units, activation, dropout, l2: each expert's MLP.
        gate: the gate's config (`model.gate`: its `Config` object; a mapping when Keras rebuilds the layer).
        raw_backbone: Backbone arguments when the experts read the raw inputs (`model.experts.input: raw`): each
            expert is then a whole network (EncoderExperts), `inputs` hold the raw features and gates read
            `gate_inputs` (of width `gate_width`).

    Call: {"shared": [batch, d], task: [batch, d] (optional; defaults to "shared")} →
        ({task: [batch, units[-1]], "shared": … when shared_gate}, {gate name: routing}), where routing has
        "weights" [batch, experts of the level] and "aux", and for sparse gates "routed" [experts] (examples each
        expert processed), "dropped" and "assignments".
    """

    def __init__(
        self,
        task_names,
        shared_experts=4,
        task_experts=0,
        task_gates=True,
        shared_gate=False,
        expert_units=(64,),
        activation="relu",
        dropout=0.0,
        l2=0.0,
        gate=None,
        raw_backbone=None,
        gate_width=None,
        **kwargs,
    ):
        if gate is None:
            raise ValueError("ExpertLevel needs its gate's config (model.gate)")
        super().__init__(**kwargs)
        self.task_names = list(task_names)
        self.shared_experts = int(shared_experts)
        self.task_experts = int(task_experts)
        self.task_gates = bool(task_gates)
        self.shared_gate = bool(shared_gate)
        self.expert_units = list(expert_units)
        self.activation, self.dropout, self.l2 = activation, dropout, l2
        self.gate = typed(one_of(GATES), gate)
        self.raw_backbone = dict(raw_backbone) if raw_backbone else None
        self.gate_width = gate_width
        if self.raw_backbone:
            pool = lambda n, name: EncoderExperts(
                n,
                self.raw_backbone,
                expert_units,
                activation,
                dropout,
                l2,  # noqa: E731
                name=name,
            )
        else:
            pool = lambda n, name: ExpertPool(n, expert_units, activation, dropout, l2, name=name)  # noqa: E731
        self.pools = {SHARED: pool(self.shared_experts, "experts_shared")}
        if self.task_experts:
            self.pools.update({t: pool(self.task_experts, f"experts_{t}") for t in self.task_names})
        self.offsets, start = {}, 0
        for g, p in self.pools.items():
            self.offsets[g] = start
            start += p.num_experts
        self.num_experts = start
        self.views = {}  # gate name → the groups it chooses among, in its logits' order
        if self.task_gates:
            for t in self.task_names:
                self.views[t] = [SHARED, t] if self.task_experts else [SHARED]
        else:
            self.views[SHARED] = [SHARED]
        if self.shared_gate:
            self.views[SHARED] = list(self.pools)
        gate_cls = GATES.get(self.gate.type)
        params = self.gate.model_dump(exclude={"type"})
        self.gates = {
            g: gate_cls(sum(self.pools[v].num_experts for v in view), name=f"gate_{g}", **params)
            for g, view in self.views.items()
        }
        self.sparse = gate_cls.sparse
        self.skip = None  # created in build() when a sparse level's gate input and expert widths differ

    def build(self, input_shape):
        if self.raw_backbone:  # experts build on their first call; gates and the skip read the gate input
            gate_shape = {g: (None, self.gate_width) for g in self.gates}
            width = self.gate_width
        else:
            shape_of = lambda g: tuple(input_shape.get(g, input_shape[SHARED]))  # noqa: E731
            for g, pool in self.pools.items():
                pool.build(shape_of(g))
            gate_shape = {g: shape_of(g) for g in self.gates}
            width = shape_of(SHARED)[-1]
        for g, gate in self.gates.items():
            gate.build(gate_shape[g])
        if self.sparse and width != self.expert_units[-1]:  # the skip path needs a projection
            self.skip = keras.layers.Dense(self.expert_units[-1], use_bias=False, name="skip")
            self.skip.build((None, width))

    def task_gate(self, task: str) -> str:
        """The gate whose mixture task `task` reads."""
        return task if self.task_gates else SHARED

    def expert_names(self) -> list[str]:
        """Labels of the level's experts in telemetry order: shared_0…, then <task>_0… per task group."""
        return [f"{g}_{i}" for g, p in self.pools.items() for i in range(p.num_experts)]

    def call(self, inputs, training=None, gate_inputs=None):
        inputs = dict(inputs)
        x_of = lambda g: inputs.get(g, inputs[SHARED])  # noqa: E731
        gx_of = (lambda g: gate_inputs.get(g, gate_inputs[SHARED])) if gate_inputs else x_of  # noqa: E731
        gated = {g: dict(self.gates[g](gx_of(g), training=training)) for g in self.views}
        if self.sparse:
            expert_rows = self._dispatch(gated, x_of, training)
        else:
            dense_outputs = {
                v: self.pools[v](x_of(v), training=training)  # [batch, n, units]
                for v in dict.fromkeys(v for view in self.views.values() for v in view)
            }
        features, routes = {}, {}
        for g, view in self.views.items():
            r = gated[g]
            if self.sparse:
                mixed, routed = self._combine(expert_rows[g], r, gx_of(g))
                r["routed"] = self._to_layout(view, routed[None])[0]
            else:
                ys = (
                    ops.concatenate([dense_outputs[v] for v in view], axis=1)
                    if len(view) > 1
                    else dense_outputs[view[0]]
                )
                # Σ_e w_e · y_e as a product and a sum: a third of the time of einsum("be,beu->bu"), which runs
                # as `batch` tiny matmuls (forward and backward).
                mixed = ops.sum(ops.cast(r["weights"], ys.dtype)[:, :, None] * ys, axis=1)
            r["weights"] = self._to_layout(view, r["weights"])
            routes[g] = {k: r[k] for k in ("weights", "aux", "routed", "dropped", "assignments") if k in r}
            features[g] = mixed
        out = {t: features[self.task_gate(t)] for t in self.task_names}
        if self.shared_gate:
            out[SHARED] = features[SHARED]
        return out, routes

    def _dispatch(self, gated, x_of, training):
        """Every expert on the rows the gates routed to it → {gate: [experts of its view, its capacity, units]}.

        Each group's experts run once, on the slots of every gate that sees the group side by side ([n, ΣC,
        features]): with MMoE's task gates that is one batched matmul per layer instead of one per task (larger
        products, half the ops; benchmarks/RESULTS.md#speed)."""
        offsets = {}  # gate → {group: first expert of the group in the gate's view}
        for g, view in self.views.items():
            offsets[g], start = {}, 0
            for v in view:
                offsets[g][v] = start
                start += self.pools[v].num_experts
        parts = {g: [] for g in self.views}
        for v, pool in self.pools.items():
            readers = [g for g, view in self.views.items() if v in view]
            if not readers:
                continue
            rows = [gated[g]["slot_example"][offsets[g][v] : offsets[g][v] + pool.num_experts] for g in readers]
            y = pool.on_rows(
                x_of(v), ops.concatenate(rows, axis=1) if len(rows) > 1 else rows[0], training=training
            )  # [n, Σ capacity, units]
            # tf.split, not slices: its gradient is one concatenation (a slice's pads a zero tensor per reader)
            ys = tf.split(y, [tf.shape(r)[1] for r in rows], axis=1) if len(rows) > 1 else [y]
            for g, part in zip(readers, ys):
                parts[g].append(part)
        return {g: ops.concatenate(ys, axis=0) if len(ys) > 1 else ys[0] for g, ys in parts.items()}

    def _combine(self, y, r, x):
        """A sparse gate's mixture from its experts' outputs y [experts of the view, capacity, units] → (mixed
        [batch, units], routed counts [experts of the view])."""
        batch = ops.shape(x)[0]
        slot_example, slot_weight = r["slot_example"], r["slot_weight"]  # [E_view, C]; `batch` = an empty slot
        weighted = y * ops.cast(slot_weight, y.dtype)[..., None]
        units = y.shape[-1]
        example = tf.reshape(slot_example, [-1])
        # an empty slot's id becomes -1, which the segment sum drops (no spare row to slice off: that slice's
        # gradient pads a [batch, units] zero tensor)
        mixed = tf.math.unsorted_segment_sum(
            tf.reshape(weighted, [-1, units]), tf.where(example < batch, example, -1), batch
        )  # [batch, units]
        skip = x if x.shape[-1] == units else self.skip(x)
        mixed = mixed + ops.cast(r["unrouted"], mixed.dtype)[:, None] * ops.cast(skip, mixed.dtype)
        return mixed, routed_counts(slot_example, batch, slot_example.shape[0])

    def _to_layout(self, view, weights):
        """[batch, experts of the view] → [batch, experts of the level] (zeros for experts outside the view)."""
        cols = np.concatenate([self.offsets[v] + np.arange(self.pools[v].num_experts) for v in view])
        if len(cols) == self.num_experts and (cols == np.arange(self.num_experts)).all():
            return weights
        place = np.zeros((len(cols), self.num_experts), np.float32)
        place[np.arange(len(cols)), cols] = 1.0
        return ops.matmul(ops.cast(weights, "float32"), ops.convert_to_tensor(place))

    def get_config(self):
        return {
            **super().get_config(),
            "task_names": self.task_names,
            "shared_experts": self.shared_experts,
            "task_experts": self.task_experts,
            "task_gates": self.task_gates,
            "shared_gate": self.shared_gate,
            "expert_units": self.expert_units,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
            "gate": plain(self.gate),
            "raw_backbone": plain(self.raw_backbone),
            "gate_width": self.gate_width,
        }
