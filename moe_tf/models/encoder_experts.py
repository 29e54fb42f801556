"""Experts that read the raw inputs: each expert is a whole network (its own stems and trunk, then an MLP), and
gates read the flattened, preprocessed raw inputs, as LibMTL builds MMoE (`model.experts.input: raw`)."""

from __future__ import annotations

import keras
from keras import ops

from moe_tf.config.base import plain
from moe_tf.models.backbone import Backbone
from moe_tf.models.layers import DenseStack
from moe_tf.models.preprocessing import build_preprocessing, feature_size


@keras.saving.register_keras_serializable(package="moe_tf")
class EncoderExperts(keras.layers.Layer):
    """`num_experts` experts, each Backbone(raw inputs) → DenseStack(units).

    Args:
        num_experts: E.
        backbone: the Backbone arguments (inputs, stems, sources, fusion_units, ...) as a dict.
        units, activation, dropout, l2: each expert's MLP.

    Call: {feature: [batch, ...]} → [batch, experts, units[-1]]; `on_rows` runs each expert on its routed rows.
    """

    def __init__(self, num_experts, backbone, units=(64,), activation="relu", dropout=0.0, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_experts = int(num_experts)
        self.backbone_config = dict(backbone)
        self.units = list(units)
        self.activation, self.dropout, self.l2 = activation, dropout, l2
        self.backbones = [Backbone(**self.backbone_config, name=f"backbone_{e}") for e in range(self.num_experts)]
        self.mlps = [DenseStack(self.units, activation, dropout, l2, name=f"mlp_{e}") for e in range(self.num_experts)]

    def build(self, input_shape):
        pass  # each expert's layers build on their first call

    def call(self, inputs, training=None):
        return ops.stack(
            [mlp(bb(inputs, training=training), training=training) for bb, mlp in zip(self.backbones, self.mlps)],
            axis=1,
        )

    def last_layer_variables(self) -> list:
        """Every expert's last layer: its MLP's, or its backbone's when the MLP is empty."""
        return [
            v
            for mlp, bb in zip(self.mlps, self.backbones)
            for v in (mlp.last_layer_variables() or bb.trainable_variables)
        ]

    def on_rows(self, inputs, rows, training=None):
        """Expert e on the examples rows[e] ([experts, slots]; `batch` = empty, all-zero inputs) →
        [experts, slots, units[-1]]."""
        padded = {f: ops.concatenate([x, ops.zeros_like(x[:1])], axis=0) for f, x in inputs.items()}
        outs = []
        for e, (bb, mlp) in enumerate(zip(self.backbones, self.mlps)):
            picked = {f: ops.take(x, rows[e], axis=0) for f, x in padded.items()}
            outs.append(mlp(bb(picked, training=training), training=training))
        return ops.stack(outs, axis=0)

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "backbone": plain(self.backbone_config),
            "units": self.units,
            "activation": self.activation,
            "dropout": self.dropout,
            "l2": self.l2,
        }


@keras.saving.register_keras_serializable(package="moe_tf")
class RawGateInput(keras.layers.Layer):
    """What gates read when experts take raw inputs: every input preprocessed (scaled, standardised), flattened and
    concatenated. Call: {feature: [batch, ...]} → [batch, Σ feature sizes]."""

    def __init__(self, inputs, normalize_numeric=True, **kwargs):
        super().__init__(**kwargs)
        self.inputs_spec = {k: dict(v) for k, v in sorted(inputs.items())}
        self.normalize_numeric = normalize_numeric
        self.preprocess = {
            f: build_preprocessing(spec, normalize_numeric, name=f"preprocess_{f}")
            for f, spec in self.inputs_spec.items()
        }

    @property
    def width(self) -> int:
        return sum(feature_size(spec) for spec in self.inputs_spec.values())

    def call(self, inputs):
        batch = ops.shape(next(inputs[f] for f in self.preprocess if f in inputs))[0]
        parts = []
        for f, layer in self.preprocess.items():
            if f in inputs:
                x = layer(inputs[f])
                parts.append(ops.reshape(x, (batch, -1)))
            else:  # an input this endpoint does not take (another source's): zeros, as in training
                parts.append(ops.zeros((batch, feature_size(self.inputs_spec[f])), self.compute_dtype))
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def get_config(self):
        return {**super().get_config(), "inputs": self.inputs_spec, "normalize_numeric": self.normalize_numeric}
