"""Categorical preprocessing inside the model: raw values (strings or int64) → int32 ids (see moe_tf.data.categorical
for the id layout). The vocabulary is model state, like a text vocabulary: checkpoints hold it (VocabularyState) and
the export serves raw values through it. The input pipeline calls the same lookup, so training steps see ids.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from moe_tf.data.categorical import MISSING_ID

PLACEHOLDER = ["[no vocabulary yet]"]  # until the builder or a checkpoint sets the real one


@keras.saving.register_keras_serializable(package="moe_tf")
class CategoryLookup(keras.layers.Layer):
    """Args:
        options: the feature's options (moe_tf.data.categorical.CategoricalColumn.options, with `missing`).

    Call: raw values [batch] (string, or int64 looked up as their decimal text) → int32 ids [batch]: 0 = missing,
    1 … oov_buckets = out of vocabulary, then the vocabulary; or 1 + hash mod `hash_buckets`. int32 input is taken
    as ids already (what the input pipeline feeds) and passes through.
    """

    def __init__(self, options, **kwargs):
        super().__init__(**kwargs)
        self.options = dict(options)
        self.missing = [str(m) for m in self.options.get("missing", [])]
        self.hash_buckets = self.options.get("hash_buckets")
        if self.hash_buckets:
            self.lookup = keras.layers.Hashing(num_bins=int(self.hash_buckets), name="hash")
        else:
            self.lookup = keras.layers.StringLookup(
                num_oov_indices=int(self.options.get("oov_buckets", 1)), mask_token=None, name="lookup"
            )
            self.lookup.set_vocabulary(PLACEHOLDER)

    @property
    def hashed(self) -> bool:
        return bool(self.hash_buckets)

    def call(self, x):
        return self.ids(x) if x.dtype != tf.int32 else x

    def ids(self, values):
        """Raw values [batch] → int32 ids [batch] ([batch, max_length] for a multi-valued column, -1 padding), for the
        input pipeline (a tf.data map) and the export."""
        text = values if values.dtype == tf.string else tf.strings.as_string(values)
        separator = self.options.get("separator")
        if not separator:
            return self._ids(text)
        length = int(self.options.get("max_length", 16))
        tokens = tf.strings.split(text, sep=separator)[:, :length]
        tokens = tf.ragged.boolean_mask(tokens, tf.strings.length(tf.strings.strip(tokens)) > 0)
        ids = tokens.with_flat_values(self._ids(tf.strings.strip(tokens.flat_values)))
        dense = ids.to_tensor(default_value=-1, shape=[None, length])
        empty = tf.logical_and(ids.row_lengths()[:, None] == 0, tf.range(length)[None, :] == 0)
        return tf.where(empty, tf.constant(MISSING_ID, tf.int32), dense)  # an empty cell: one missing id

    def _ids(self, text):
        ids = tf.cast(self.lookup(text), tf.int32) + 1
        if self.missing:
            is_missing = tf.reduce_any(tf.equal(text[..., None], tf.constant(self.missing)), axis=-1)
            ids = tf.where(is_missing, tf.constant(MISSING_ID, tf.int32), ids)
        return ids

    def vocabulary(self) -> list[str]:
        """The vocabulary (without the OOV token); empty for a hashed feature."""
        if self.hashed:
            return []
        oov = int(self.options.get("oov_buckets", 1))
        tokens = self.lookup.get_vocabulary()[oov:]
        return [t.decode() if isinstance(t, bytes) else str(t) for t in tokens]

    @property
    def has_vocabulary(self) -> bool:
        return self.hashed or self.vocabulary() != PLACEHOLDER

    def set_vocabulary(self, tokens: list[str]) -> None:
        if not self.hashed:
            self.lookup.set_vocabulary(list(tokens))

    def get_config(self):
        return {**super().get_config(), "options": self.options}


@keras.saving.register_keras_serializable(package="moe_tf")
class Bucketizer(keras.layers.Layer):
    """A numeric column read as a categorical input: its bucket among `buckets` quantile buckets of the training
    split, whose `buckets - 1` boundaries are a non-trainable weight (in checkpoints and the export; the builder
    sets them from the training split).

    Args:
        options: the feature's options (`buckets`).

    Call: float [batch] → int32 ids [batch]: 0 for NaN (missing), else 1 + the number of boundaries ≤ the value.
    """

    def __init__(self, options, **kwargs):
        super().__init__(**kwargs)
        self.options = dict(options)
        self.buckets = int(self.options["buckets"])

    def build(self, input_shape):
        self.boundaries = self.add_weight(
            name="boundaries", shape=(self.buckets - 1,), initializer="zeros", trainable=False
        )

    def set_boundaries(self, values) -> None:
        self.boundaries.assign(tf.cast(values, tf.float32))

    def call(self, x):
        x = tf.cast(x, tf.float32)
        flat = tf.reshape(x, [-1])
        ids = tf.searchsorted(self.boundaries, flat, side="right", out_type=tf.int32) + 1
        ids = tf.where(tf.math.is_nan(flat), tf.constant(MISSING_ID, tf.int32), ids)
        return tf.ensure_shape(tf.reshape(ids, tf.shape(x)), x.shape)

    def get_config(self):
        return {**super().get_config(), "options": self.options}


def quantile_boundaries(values, buckets: int):
    """The `buckets - 1` boundaries of equal-count buckets of `values` (NaN ignored; repeated boundaries leave
    buckets empty where many values are equal)."""
    import numpy as np

    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if not len(values):
        return np.zeros(buckets - 1)
    return np.quantile(values, np.arange(1, buckets) / buckets)
