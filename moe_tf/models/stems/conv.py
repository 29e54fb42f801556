"""A small convolutional image stem."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.stems import STEMS


@STEMS.register("conv")
@keras.saving.register_keras_serializable(package="moe_tf")
class ConvStem(keras.layers.Layer):
    """Conv(3×3) → [BatchNorm] → ReLU → MaxPool(2) per entry of `filters`, then global average pooling
    (or flatten when `flatten: true`).

    Call: images [batch, H, W, C] float → [batch, features].
    """

    modalities = ("image",)

    class Config(StrictModel):
        type: Literal["conv"] = "conv"
        filters: list[int] = Field(default_factory=lambda: [32, 64], min_length=1)
        kernel_size: int = Field(3, ge=1)
        batch_norm: bool = False
        flatten: bool = True

    def __init__(self, filters=(32, 64), kernel_size=3, batch_norm=False, flatten=True, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters = list(filters)
        self.kernel_size = kernel_size
        self.batch_norm = batch_norm
        self.flatten = flatten
        self.l2 = l2
        reg = keras.regularizers.L2(l2) if l2 else None
        self.blocks = []
        for i, f in enumerate(self.filters):
            block = [keras.layers.Conv2D(f, kernel_size, padding="same", kernel_regularizer=reg, name=f"conv_{i}")]
            if batch_norm:
                block.append(keras.layers.BatchNormalization(name=f"bn_{i}"))
            block.append(keras.layers.ReLU())
            block.append(keras.layers.MaxPooling2D(2, padding="same"))
            self.blocks.append(block)
        self.pool = keras.layers.Flatten() if flatten else keras.layers.GlobalAveragePooling2D()

    def call(self, x, training=None):
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
        return self.pool(x)

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "batch_norm": self.batch_norm, "flatten": self.flatten, "l2": self.l2}
