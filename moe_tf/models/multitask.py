"""The whole multi-task model: an encoder per named input → shared trunk → architecture → tower and head per task."""

from __future__ import annotations

import keras
from keras import ops

from moe_tf.data.base import SOURCE_KEY
from moe_tf.models.architectures import ARCHITECTURES
from moe_tf.models.encoder import InputEncoder
from moe_tf.models.layers import DenseStack


@keras.saving.register_keras_serializable(package="moe_tf")
class MultiTaskModel(keras.Model):
    """Raw named features in, one output per task out.

    Args:
        model_config: `model` section of the config, as a dict (see README, "model").
        tasks: [{"name": str, "units": int}]: `units` is the head width (classes, or 1 for binary/regression).
        inputs: {feature: {"dtype", "shape", "modality"}}: the model inputs.
        stems: {feature: stem config}: each input's resolved stem.
        sources: [[feature, ...]] per source (None with one source): which inputs each source provides.

    Call: {feature: [batch, *shape], optionally "_source": int32 [batch]} →
        {"outputs": {task: logits [batch, units] float32}, "gates": {task: [batch, experts] float32}}.
    An input missing from the dict, or absent for an example (its `_source` does not provide it), adds nothing to
    that example; when no example of a batch has an input, its encoder does not run.
    """

    def __init__(self, model_config, tasks, inputs, stems, sources=None, **kwargs):
        super().__init__(**kwargs)
        self.model_config = dict(model_config)
        self.tasks = [dict(t) for t in tasks]
        self.inputs_spec = {k: dict(v) for k, v in sorted(inputs.items())}
        self.stems = {k: dict(v) for k, v in stems.items()}
        self.sources = [list(s) for s in sources] if sources else None
        cfg = self.model_config
        l2, dropout, act = cfg["l2"], cfg["dropout"], cfg["activation"]
        fused = len(self.inputs_spec) > 1
        self.encoders = {
            f: InputEncoder(spec, self.stems[f], cfg["fusion_units"] if fused else None, cfg["normalize_numeric"], l2,
                            name=f"encoder_{f}")
            for f, spec in self.inputs_spec.items()
        }
        self.trunk = DenseStack(cfg["trunk"]["units"], act, dropout, l2, name="trunk")
        names = [t["name"] for t in self.tasks]
        arch_kwargs = dict(task_names=names, expert_units=cfg["experts"]["units"], activation=act,
                           dropout=dropout, l2=l2, name="mixture")
        if cfg["architecture"] != "shared_bottom":
            arch_kwargs.update(num_experts=cfg["experts"]["count"], gate=cfg["gate"])
        self.mixture = ARCHITECTURES.get(cfg["architecture"])(**arch_kwargs)
        self.towers = {t["name"]: DenseStack(cfg["tower"]["units"], act, dropout, l2, name=f"tower_{t['name']}")
                       for t in self.tasks}
        # Heads compute in float32 under mixed precision.
        self.heads = {t["name"]: keras.layers.Dense(t["units"], dtype="float32", name=f"head_{t['name']}")
                      for t in self.tasks}

    def _encode(self, inputs, training):
        """Σ over the inputs an example has of its encoder's output: [batch, features]."""
        given = [f for f in self.encoders if f in inputs]
        if not given:
            raise ValueError(f"no model input given; expected some of {sorted(self.encoders)}")
        if len(self.encoders) == 1:
            return self.encoders[given[0]](inputs[given[0]], training=training)
        source = inputs.get(SOURCE_KEY)
        total = None
        for f in given:
            x = inputs[f]
            if source is None or self.sources is None:
                h = self.encoders[f](x, training=training)
            else:
                has = ops.convert_to_tensor([f in s for s in self.sources])  # [sources] bool
                present = ops.take(has, ops.cast(source, "int32"))  # [batch] bool
                h = self._encode_present(f, x, present, training)
            total = h if total is None else total + h
        return total

    def _encode_present(self, f, x, present, training):
        """The encoder of `f` on the examples that have it (zeros elsewhere); skipped when none has it."""
        batch = ops.shape(x)[0]
        units = self.model_config["fusion_units"]

        def run():
            return self.encoders[f](x, training=training) * ops.cast(present, self.compute_dtype)[:, None]

        def skip():
            return ops.zeros((batch, units), self.compute_dtype)

        return ops.cond(ops.any(present), run, skip)

    def call(self, inputs, training=None):
        x = self._encode(inputs, training)  # [batch, features]
        x = self.trunk(x, training=training)
        features, gates = self.mixture(x, training=training)
        outputs = {name: self.heads[name](self.towers[name](features[name], training=training))
                   for name in features}
        return {"outputs": outputs, "gates": gates}

    def variable_groups(self) -> tuple[list, dict[str, list]]:
        """(shared trainable variables, {task: trainable variables only that task's loss reaches}).

        A task's own variables are its tower, its head and whatever the architecture gives it alone (an MMoE gate);
        everything else (encoders, trunk, experts) is shared. Gradient-based weightings treat the two differently.
        """
        own = {t["name"]: [*self.towers[t["name"]].trainable_variables, *self.heads[t["name"]].trainable_variables,
                           *self.mixture.task_variables(t["name"])] for t in self.tasks}
        taken = {id(v) for vs in own.values() for v in vs}
        shared = [v for v in self.trainable_variables if id(v) not in taken]
        return shared, own

    def get_config(self):
        return {"model_config": self.model_config, "tasks": self.tasks, "inputs": self.inputs_spec,
                "stems": self.stems, "sources": self.sources, "name": self.name}
