"""Bag of embeddings: the mean or max of the token (and n-gram) embeddings, fastText-style. The default text stem."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.models.stems.text_base import TextStem, TextStemConfig, masked_max, masked_mean
from moe_tf.registry import STEMS


@STEMS.register("bag")
@keras.saving.register_keras_serializable(package="moe_tf")
class BagOfEmbeddings(TextStem):
    """Call: ids [batch, length] → [batch, embedding_dim]."""

    class Config(TextStemConfig):
        type: Literal["bag"] = Field(
            "bag", description="text: the mean (or max) of the token and n-gram embeddings, fastText-style"
        )
        pooling: Literal["mean", "max"] = Field("mean", description="`mean` or `max` over the tokens")

    def __init__(self, pooling="mean", **kwargs):
        super().__init__(**kwargs)
        self.pooling = pooling

    def call(self, ids, training=None):
        x, mask = self.embed(ids), self.mask(ids)
        return masked_mean(x, mask) if self.pooling == "mean" else masked_max(x, mask)

    def get_config(self):
        return {**super().get_config(), "pooling": self.pooling}
