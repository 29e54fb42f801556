"""One model input's path to the shared trunk: preprocessing of its modality → its stem → (with several inputs)
a projection to the common width the inputs' features are summed at."""

from __future__ import annotations

import keras
from keras import ops

from moe_tf.config.base import one_of, plain, typed
from moe_tf.models.preprocessing import build_preprocessing
from moe_tf.registry import STEMS


@keras.saving.register_keras_serializable(package="moe_tf")
class InputEncoder(keras.layers.Layer):
    """Args:
        spec: the feature spec {"dtype", "shape", "modality"}.
        stem: the stem's config (its `Config` object; a mapping when Keras rebuilds the layer).
        project_units: width of the projection after the stem (None: no projection, one input only).
        normalize_numeric, l2: from the `model` config.

    Call: raw feature [batch, *shape] → [batch, features].
    """

    def __init__(self, spec, stem, project_units=None, normalize_numeric=True, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.spec = dict(spec)
        self.stem_config = typed(one_of(STEMS), stem)
        self.project_units = project_units
        self.normalize_numeric = normalize_numeric
        self.l2 = l2
        self.preprocess = build_preprocessing(self.spec, normalize_numeric, name="preprocess", stem=self.stem_config)
        stem_cls = STEMS.get(self.stem_config.type)
        renames = getattr(stem_cls, "config_renames", {})  # config keys that are also Keras layer arguments
        params = {renames.get(k, k): v for k, v in self.stem_config.model_dump(exclude={"type"}).items()}
        self.stem = stem_cls(l2=l2, name="stem", **params)
        reg = keras.regularizers.L2(l2) if l2 else None
        self.project = (
            keras.layers.Dense(project_units, kernel_regularizer=reg, name="project") if project_units else None
        )

    def call(self, x, training=None):
        x = self.stem(self.preprocess(x), training=training)  # [batch, stem features]
        return self.project(x) if self.project is not None else x

    def get_config(self):
        return {
            **super().get_config(),
            "spec": self.spec,
            "stem": plain(self.stem_config),
            "project_units": self.project_units,
            "normalize_numeric": self.normalize_numeric,
            "l2": self.l2,
        }


@keras.saving.register_keras_serializable(package="moe_tf")
class TabularEncoder(keras.layers.Layer):
    """The inputs whose stem is `tabular`, encoded together: each input's preprocessing (a categorical lookup, a
    numeric normalisation) → one TabularStem → (with other inputs) a projection to the common width.

    Args:
        inputs: {feature: spec} of its inputs.
        stem: the tabular stem's config (a mapping when Keras rebuilds the layer).
        project_units, normalize_numeric, l2: as InputEncoder.

    Call: {feature: raw [batch, *shape]} (an input missing from the dict reads as missing / zeros) → [batch, features].
    """

    def __init__(self, inputs, stem, project_units=None, normalize_numeric=True, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.inputs_spec = {k: dict(v) for k, v in sorted(inputs.items())}
        self.stem_config = typed(one_of(STEMS), stem)
        self.project_units = project_units
        self.normalize_numeric = normalize_numeric
        self.l2 = l2
        self.preprocess = {
            f: build_preprocessing(spec, normalize_numeric, name=f"preprocess_{f}")
            for f, spec in self.inputs_spec.items()
        }
        params = self.stem_config.model_dump(exclude={"type"})
        self.stem = STEMS.get(self.stem_config.type)(inputs=self.inputs_spec, l2=l2, name="stem", **params)
        reg = keras.regularizers.L2(l2) if l2 else None
        self.project = (
            keras.layers.Dense(project_units, kernel_regularizer=reg, name="project") if project_units else None
        )

    def call(self, x, training=None):
        batch = ops.shape(next(x[f] for f in self.inputs_spec if f in x))[0]
        prepared = {}
        for f, spec in self.inputs_spec.items():
            value = x[f] if f in x else absent(spec, batch)
            prepared[f] = self.preprocess[f](value)
        h = self.stem(prepared, training=training)
        return self.project(h) if self.project is not None else h

    def get_config(self):
        return {
            **super().get_config(),
            "inputs": self.inputs_spec,
            "stem": plain(self.stem_config),
            "project_units": self.project_units,
            "normalize_numeric": self.normalize_numeric,
            "l2": self.l2,
        }


def absent(spec: dict, batch):
    """What an input not given reads as: zeros (a categorical one: the missing id; a multi-valued one: no value)."""
    options = spec.get("options", {})
    if options.get("separator"):
        return ops.full((batch, int(options.get("max_length", 16))), -1, "int32")
    return ops.zeros((batch, *spec["shape"]), "int32" if spec["modality"] == "categorical" else "float32")
