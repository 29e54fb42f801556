"""Text preprocessing inside the model: raw strings → token ids with a vocabulary built from the training split.

The vocabulary is model state: `TextVectorizer` keeps it, checkpoints hold it (`VocabularyState`), and the export
serves raw strings through it. The input pipeline calls the same vectorizer, so training steps see token ids (which
XLA and TPUs can compile) while the export takes strings.
"""

from __future__ import annotations

import json

import keras
import tensorflow as tf
from keras import ops

VOCABULARY_KEYS = ("max_tokens", "sequence_length", "ngrams", "standardize")  # text-stem keys the vectorizer reads
PLACEHOLDER = ["", "[UNK]", "[no vocabulary yet]"]  # until adapt() or a checkpoint sets the real one


@keras.saving.register_keras_serializable(package="moe_tf")
class TextVectorizer(keras.layers.Layer):
    """`keras.layers.TextVectorization` (whitespace tokens, optional n-grams appended after the unigrams, padded or
    truncated to `sequence_length`).

    Args:
        max_tokens: vocabulary size, counting the padding and out-of-vocabulary ids.
        sequence_length: ids per example.
        ngrams: 1 for words only; n > 1 adds every 2..n-gram as a token.
        standardize: `lower_and_strip_punctuation`, `lower` or `none`.

    Call: strings [batch] → int32 ids [batch, sequence_length] (0 = padding, 1 = unknown); ids pass through.
    """

    def __init__(
        self, max_tokens=20000, sequence_length=64, ngrams=1, standardize="lower_and_strip_punctuation", **kwargs
    ):
        super().__init__(**kwargs)
        self.max_tokens, self.sequence_length, self.ngrams = int(max_tokens), int(sequence_length), int(ngrams)
        self.standardize = standardize
        self.vectorize = keras.layers.TextVectorization(
            max_tokens=self.max_tokens,
            standardize=None if standardize == "none" else standardize,
            split="whitespace",
            ngrams=self.ngrams if self.ngrams > 1 else None,
            output_mode="int",
            output_sequence_length=self.sequence_length,
            name="vectorize",
        )
        self.vectorize.set_vocabulary(PLACEHOLDER)

    def call(self, x):
        return self.ids(x) if x.dtype == tf.string else ops.cast(x, "int32")

    def ids(self, texts):
        """strings [batch] → int32 ids [batch, sequence_length], for the input pipeline (a tf.data map)."""
        return tf.cast(self.vectorize(texts), tf.int32)

    def adapt(self, texts: tf.data.Dataset) -> None:
        """Builds the vocabulary from a dataset of string batches (the training split)."""
        self.vectorize.adapt(texts)

    def vocabulary(self) -> list[str]:
        return [t.decode() if isinstance(t, bytes) else str(t) for t in self.vectorize.get_vocabulary()]

    @property
    def has_vocabulary(self) -> bool:
        return self.vocabulary() != PLACEHOLDER

    def set_vocabulary(self, tokens: list[str]) -> None:
        self.vectorize.set_vocabulary(list(tokens))

    def get_config(self):
        return {
            **super().get_config(),
            "max_tokens": self.max_tokens,
            "sequence_length": self.sequence_length,
            "ngrams": self.ngrams,
            "standardize": self.standardize,
        }


class VocabularyState(tf.train.experimental.PythonState):
    """A text feature's vocabulary in a checkpoint: saved as JSON, and on restore set on every vectorizer of the
    feature (so a rebuilt model gets the trained vocabulary, whatever the data it was rebuilt with)."""

    def __init__(self, vectorizers: list[TextVectorizer]):
        self.vectorizers = list(vectorizers)

    def serialize(self):
        return json.dumps(self.vectorizers[0].vocabulary())

    def deserialize(self, string_value):
        tokens = self.decode(string_value)
        for v in self.vectorizers:
            v.set_vocabulary(tokens)

    @staticmethod
    def decode(string_value) -> list[str]:
        """The vocabulary from its checkpoint value (what `serialize` wrote)."""
        return json.loads(string_value.decode() if isinstance(string_value, bytes) else string_value)
