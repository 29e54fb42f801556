"""What every text stem shares: the vocabulary settings (read by the model's TextVectorizer) and a token embedding
with the padding mask.

A text stem takes the vectorizer's int32 ids [batch, sequence_length] (0 = padding) → [batch, features].
"""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops
from pydantic import Field

from moe_tf.config.base import StrictModel


class TextStemConfig(StrictModel):
    max_tokens: int = Field(
        20000, ge=3, description="vocabulary size of the model's `TextVectorization`, counting padding and unknown"
    )
    sequence_length: int = Field(
        64, ge=1, description="token ids per text (padded or truncated; with n-grams they follow the words)"
    )
    ngrams: int = Field(1, ge=1, le=4, description="1: words; n: also every 2..n-gram, appended after the words")
    standardize: Literal["lower_and_strip_punctuation", "lower", "none"] = Field(
        "lower_and_strip_punctuation",
        description="text standardisation before splitting: `lower_and_strip_punctuation`, `lower` or `none`",
    )
    embedding_dim: int = Field(64, ge=1, description="embedding width (the transformer's width)")


class TextStem(keras.layers.Layer):
    """Base layer: `self.embed` (ids → [batch, length, embedding_dim]) and `mask(ids)` ([batch, length], 1 where a
    token is)."""

    modalities = ("text",)

    def __init__(
        self,
        max_tokens=20000,
        sequence_length=64,
        ngrams=1,
        standardize="lower_and_strip_punctuation",
        embedding_dim=64,
        l2=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.max_tokens, self.sequence_length, self.ngrams = max_tokens, sequence_length, ngrams
        self.standardize, self.embedding_dim, self.l2 = standardize, embedding_dim, l2
        self.regularizer = keras.regularizers.L2(l2) if l2 else None
        self.embed = keras.layers.Embedding(max_tokens, embedding_dim, name="embedding")

    def mask(self, ids):
        return ops.cast(ops.not_equal(ids, 0), self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "max_tokens": self.max_tokens,
            "sequence_length": self.sequence_length,
            "ngrams": self.ngrams,
            "standardize": self.standardize,
            "embedding_dim": self.embedding_dim,
            "l2": self.l2,
        }


def masked_mean(x, mask):
    """Mean of x [batch, length, d] over the positions where mask [batch, length] is 1 (zeros for an empty text)."""
    total = ops.sum(x * mask[:, :, None], axis=1)
    return total / ops.maximum(ops.sum(mask, axis=1, keepdims=True), 1.0)


def masked_max(x, mask):
    """Max of x [batch, length, d] over the positions where mask is 1 (zeros for an empty text)."""
    very_low = ops.cast(-1e4, x.dtype)
    best = ops.max(ops.where(mask[:, :, None] > 0, x, very_low), axis=1)
    return ops.where(ops.sum(mask, axis=1, keepdims=True) > 0, best, ops.zeros_like(best))
