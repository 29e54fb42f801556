"""Named raw inputs → one feature vector: each input's encoder (preprocessing → stem → projection), summed over
the inputs an example has, then the dense trunk."""

from __future__ import annotations

import keras
from keras import ops

from moe_tf.config.base import one_of, plain, typed
from moe_tf.data.base import SOURCE_KEY
from moe_tf.models.encoder import InputEncoder, TabularEncoder
from moe_tf.models.layers import DenseStack
from moe_tf.registry import STEMS


@keras.saving.register_keras_serializable(package="moe_tf")
class Backbone(keras.layers.Layer):
    """Args:
        inputs: {feature: {"dtype", "shape", "modality"}}.
        stems: {feature: stem config} (config objects; mappings when Keras rebuilds the layer).
        sources: [[feature, ...]] per source (None with one source): which inputs each source provides.
        fusion_units, normalize_numeric, trunk_units, activation, dropout, l2: from the `model` config.

    Call: {feature: [batch, *shape], optionally "_source": int32 [batch]} → [batch, features]. An input missing
    from the dict, or absent for an example (its `_source` does not provide it), adds nothing to that example;
    when no example of a batch has an input, its encoder does not run. The inputs whose stem is `tabular` share one
    TabularEncoder (`tabular`), which counts as present when any of its inputs is.
    """

    def __init__(
        self,
        inputs,
        stems,
        sources=None,
        fusion_units=128,
        normalize_numeric=True,
        trunk_units=(),
        activation="relu",
        dropout=0.0,
        l2=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.inputs_spec = {k: dict(v) for k, v in sorted(inputs.items())}
        self.stems = {k: typed(one_of(STEMS), v) for k, v in stems.items()}
        self.sources = [list(s) for s in sources] if sources else None
        self.fusion_units = fusion_units
        self.normalize_numeric = normalize_numeric
        self.trunk_units = list(trunk_units)
        self.activation, self.dropout, self.l2 = activation, dropout, l2
        grouped = [f for f, stem in self.stems.items() if stem.type == "tabular"]
        own = [f for f in self.inputs_spec if f not in grouped]
        fused = len(own) + bool(grouped) > 1
        project = fusion_units if fused else None
        self.encoders = {
            f: InputEncoder(self.inputs_spec[f], self.stems[f], project, normalize_numeric, l2, name=f"encoder_{f}")
            for f in own
        }
        self.tabular = (
            TabularEncoder(
                {f: self.inputs_spec[f] for f in grouped},
                self.stems[grouped[0]],
                project,
                normalize_numeric,
                l2,
                name="tabular_encoder",
            )
            if grouped
            else None
        )
        self.trunk = DenseStack(self.trunk_units, activation, dropout, l2, name="trunk")

    def all_encoders(self) -> list:
        """Every encoder: one per input, and the tabular one."""
        return [*self.encoders.values(), *([self.tabular] if self.tabular is not None else [])]

    def preprocess_layer(self, feature: str):
        """The preprocessing layer of an input."""
        if feature in self.encoders:
            return self.encoders[feature].preprocess
        if self.tabular is None:
            raise KeyError(feature)
        return self.tabular.preprocess[feature]

    def _parts(self, inputs) -> list:
        """[(encoder, its inputs given, what it is called on)] for the encoders with an input in `inputs`."""
        parts = [(self.encoders[f], [f], inputs[f]) for f in self.encoders if f in inputs]
        if self.tabular is not None:
            given = [f for f in self.tabular.inputs_spec if f in inputs]
            if given:
                parts.append((self.tabular, given, {f: inputs[f] for f in given}))
        return parts

    def call(self, inputs, training=None):
        parts = self._parts(inputs)
        if not parts:
            raise ValueError(f"no model input given; expected some of {sorted(self.inputs_spec)}")
        source = inputs.get(SOURCE_KEY)
        total = None
        for encoder, given, x in parts:
            if source is None or self.sources is None or len(parts) == 1 and len(self.all_encoders()) == 1:
                h = encoder(x, training=training)
            else:
                has = ops.convert_to_tensor([any(f in s for f in given) for s in self.sources])  # [sources] bool
                present = ops.take(has, ops.cast(source, "int32"))  # [batch] bool
                h = self._encode_present(encoder, x, present, training)
            total = h if total is None else total + h
        return self.trunk(total, training=training)

    def _encode_present(self, encoder, x, present, training):
        """The encoder on the examples that have its input (zeros elsewhere); skipped when none has it."""
        batch = ops.shape(next(iter(x.values())) if isinstance(x, dict) else x)[0]

        def run():
            return encoder(x, training=training) * ops.cast(present, self.compute_dtype)[:, None]

        def skip():
            return ops.zeros((batch, self.fusion_units), self.compute_dtype)

        return ops.cond(ops.any(present), run, skip)

    def get_config(self):
        return {
            **super().get_config(),
            "inputs": self.inputs_spec,
            "stems": plain(self.stems),
            "sources": self.sources,
            "fusion_units": self.fusion_units,
            "normalize_numeric": self.normalize_numeric,
            "trunk_units": self.trunk_units,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
        }
