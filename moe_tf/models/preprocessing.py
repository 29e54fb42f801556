"""Per-modality preprocessing at the front of each input's stem, inside the model (so the export takes raw features).

- image: uint8 [batch, H, W, C] → compute dtype in [0, 1].
- numeric: [batch, ...] → float, optionally standardised with the training split's mean and variance, which are
  non-trainable weights of the model (saved in checkpoints and the export).
- text: strings [batch] → token ids [batch, sequence_length] (models/text.py; the vocabulary is model state).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

EPS = 1e-6


@keras.saving.register_keras_serializable(package="moe_tf")
class ImageScaling(keras.layers.Layer):
    """uint8 pixels → [0, 1] in the compute dtype. Call: [batch, H, W, C] → the same shape."""

    def call(self, x):
        return ops.cast(x, self.compute_dtype) / 255.0


@keras.saving.register_keras_serializable(package="moe_tf")
class NumericNormalization(keras.layers.Layer):
    """(x - mean) / sqrt(var + eps) per element of the feature, with statistics from the training split.

    Args:
        shape: the feature's per-example shape.
        normalize: false passes the values through as floats.

    Call: [batch, *shape] → [batch, *shape] (a scalar feature [batch] → [batch, 1]).
    """

    def __init__(self, shape=(), normalize=True, **kwargs):
        kwargs.setdefault("autocast", False)  # the statistics stay float32 under mixed precision (normalise, then cast)
        super().__init__(**kwargs)
        self.shape = tuple(int(s) for s in shape)
        self.normalize = bool(normalize)

    def build(self, input_shape):
        if self.normalize:
            self.mean = self.add_weight(name="mean", shape=self.shape, initializer="zeros", trainable=False)
            self.variance = self.add_weight(name="variance", shape=self.shape, initializer="ones", trainable=False)

    def set_statistics(self, mean: np.ndarray, variance: np.ndarray) -> None:
        if self.normalize:
            self.mean.assign(np.asarray(mean, np.float32).reshape(self.shape))
            self.variance.assign(np.asarray(variance, np.float32).reshape(self.shape))

    def call(self, x):
        x = ops.cast(x, "float32")
        if self.normalize:
            x = (x - self.mean) / ops.sqrt(self.variance + EPS)
        if not self.shape:
            x = ops.expand_dims(x, -1)  # [batch, 1]
        return ops.cast(x, self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape), "normalize": self.normalize}


def build_preprocessing(spec: dict, normalize_numeric: bool, name: str, stem=None):
    """The preprocessing layer for a feature spec ({"dtype", "shape", "modality"}); a text feature's vectorizer
    takes its vocabulary settings from its `stem` config."""
    if spec["modality"] == "text":
        from moe_tf.models.text import VOCABULARY_KEYS, TextVectorizer

        return TextVectorizer(**{k: getattr(stem, k) for k in VOCABULARY_KEYS if hasattr(stem, k)}, name=name)
    if spec["modality"] == "image":
        return ImageScaling(name=name)
    if spec["modality"] == "numeric":
        return NumericNormalization(spec["shape"], normalize_numeric, name=name)
    raise ValueError(f"no preprocessing for modality {spec['modality']!r} yet")
