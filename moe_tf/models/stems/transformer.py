"""A small transformer encoder text stem: token + learned position embeddings, pre-norm self-attention blocks
that ignore padding, then the mean over the tokens."""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops
from pydantic import Field

from moe_tf.models.stems.text_base import TextStem, TextStemConfig, masked_mean
from moe_tf.registry import STEMS


@STEMS.register("transformer")
@keras.saving.register_keras_serializable(package="moe_tf")
class TransformerStem(TextStem):
    """Width is `embedding_dim`. Call: ids [batch, length] → [batch, embedding_dim]."""

    class Config(TextStemConfig):
        type: Literal["transformer"] = Field(
            "transformer",
            description="text: token + learned position embeddings, pre-norm self-attention blocks that ignore "
            "padding, then the mean over tokens",
        )
        layers: int = Field(2, ge=1, description="encoder blocks")
        heads: int = Field(4, ge=1, description="attention heads")
        ff_units: int = Field(128, ge=1, description="hidden width of each block's feed-forward network")
        dropout: float = Field(0.1, ge=0.0, lt=1.0, description="dropout in attention and after each block")

    def __init__(self, layers=2, heads=4, ff_units=128, dropout=0.1, **kwargs):
        super().__init__(**kwargs)
        self.num_layers, self.heads, self.ff_units, self.rate = int(layers), int(heads), int(ff_units), dropout
        d = self.embedding_dim
        self.positions = keras.layers.Embedding(self.sequence_length, d, name="positions")
        self.blocks = []
        for i in range(self.num_layers):
            self.blocks.append(
                {
                    "norm_1": keras.layers.LayerNormalization(name=f"block_{i}_norm_1"),
                    "attention": keras.layers.MultiHeadAttention(
                        self.heads, max(d // self.heads, 1), dropout=dropout, name=f"block_{i}_attention"
                    ),
                    "norm_2": keras.layers.LayerNormalization(name=f"block_{i}_norm_2"),
                    "ff_1": keras.layers.Dense(
                        self.ff_units, activation="gelu", kernel_regularizer=self.regularizer, name=f"block_{i}_ff_1"
                    ),
                    "ff_2": keras.layers.Dense(d, kernel_regularizer=self.regularizer, name=f"block_{i}_ff_2"),
                }
            )
        self.drop = keras.layers.Dropout(dropout)
        self.norm = keras.layers.LayerNormalization(name="final_norm")

    def call(self, ids, training=None):
        mask = self.mask(ids)  # [batch, length]
        x = self.embed(ids) + self.positions(ops.arange(ops.shape(ids)[1]))[None]
        attend = ops.logical_and(mask[:, None, :] > 0, mask[:, :, None] > 0)  # [batch, query, key]
        for b in self.blocks:
            h = b["norm_1"](x)
            x = x + self.drop(b["attention"](h, h, attention_mask=attend, training=training), training=training)
            h = b["ff_2"](self.drop(b["ff_1"](b["norm_2"](x)), training=training))
            x = x + self.drop(h, training=training)
        return masked_mean(self.norm(x), mask)

    def get_config(self):
        return {
            **super().get_config(),
            "layers": self.num_layers,
            "heads": self.heads,
            "ff_units": self.ff_units,
            "dropout": self.rate,
        }
