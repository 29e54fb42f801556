"""A 1-D convolutional text stem (Kim 2014): convolutions of several widths over the token embeddings, each
max-pooled over the text."""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops
from pydantic import Field

from moe_tf.models.stems.text_base import TextStem, TextStemConfig, masked_max
from moe_tf.registry import STEMS


@STEMS.register("text_cnn")
@keras.saving.register_keras_serializable(package="moe_tf")
class TextCNN(TextStem):
    """Call: ids [batch, length] → [batch, filters · len(kernel_sizes)]."""

    class Config(TextStemConfig):
        type: Literal["text_cnn"] = Field(
            "text_cnn",
            description="text: 1-D convolutions of each width over the embeddings, each max-pooled over the text (Kim "
            "2014)",
        )
        filters: int = Field(64, ge=1, description="filters per kernel width")
        kernel_sizes: list[int] = Field(
            default_factory=lambda: [3, 4, 5], min_length=1, description="convolution widths"
        )

    def __init__(self, filters=64, kernel_sizes=(3, 4, 5), **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_sizes = int(filters), [int(k) for k in kernel_sizes]
        self.convs = [
            keras.layers.Conv1D(
                self.filters,
                k,
                padding="same",
                activation="relu",
                kernel_regularizer=self.regularizer,
                name=f"conv_{k}",
            )
            for k in self.kernel_sizes
        ]

    def call(self, ids, training=None):
        x, mask = self.embed(ids), self.mask(ids)
        return ops.concatenate([masked_max(conv(x), mask) for conv in self.convs], axis=-1)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_sizes": self.kernel_sizes}
