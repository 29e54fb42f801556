"""A convolutional image stem, written layer by layer in the config when needed (e.g. LeNet-style)."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field, model_validator

from moe_tf.config.base import StrictModel
from moe_tf.errors import ConfigError
from moe_tf.models.normalization import BatchNormConfig, batch_norm_layer
from moe_tf.registry import STEMS


class ConvLayerConfig(StrictModel):
    """One convolution block: Conv2D(filters, kernel_size, stride, padding) → [BatchNorm] → ReLU → pooling."""

    filters: int = Field(..., ge=1, description="the block's output channels")
    kernel_size: int | None = Field(
        None, ge=1, description="the block's kernel size (default: the stem's `kernel_size`)"
    )
    stride: int = Field(1, ge=1, description="the block's convolution stride")
    padding: Literal["same", "valid"] = Field("same", description="`same` or `valid`")
    pool: int = Field(2, ge=1, description="pooling window and stride after the block; 1 = no pooling")
    pool_type: Literal["max", "avg"] = Field("max", description="`max` or `avg` pooling")


def block_configs(filters=None, layers=None) -> list[dict]:
    """The conv blocks a stem config describes: `layers` as given, else one default block per entry of `filters`
    (default [32, 64])."""
    return [dict(c) for c in layers] if layers is not None else [{"filters": f} for f in (filters or [32, 64])]


def check_fits(stem, shape, where: str) -> None:
    """Raises ConfigError when a `valid` convolution of the conv stem's config `stem` no longer fits the feature
    map of an input of per-example `shape` [H, W, C] (`where`: the config path, for the message)."""
    h, w = shape[0], shape[1]
    for i, c in enumerate(ConvLayerConfig(**c) for c in block_configs(stem.filters, stem.layers)):
        k, s = c.kernel_size or stem.kernel_size, c.stride
        if c.padding == "valid":
            h, w = (h - k) // s + 1, (w - k) // s + 1
        else:
            h, w = -(-h // s), -(-w // s)
        if h < 1 or w < 1:
            raise ConfigError(
                f"{where}.layers[{i}]: a {k}×{k} 'valid' convolution does not fit the "
                f"{shape[0]}×{shape[1]} input after the layers before it; use padding 'same', a smaller "
                f"kernel or fewer layers"
            )
        if c.pool > 1:
            h, w = -(-h // c.pool), -(-w // c.pool)


@STEMS.register("conv")
@keras.saving.register_keras_serializable(package="moe_tf")
class ConvStem(keras.layers.Layer):
    """Conv → [BatchNorm] → ReLU → pooling per block, then flatten (or global average pooling with
    `flatten: false`). Blocks come from `layers` (each with its own kernel size, stride, padding and pooling) or,
    shorter, from `filters` (3×3 `same` convolutions, 2×2 max pooling).

    Call: images [batch, H, W, C] float → [batch, features].
    """

    modalities = ("image",)

    class Config(StrictModel):
        type: Literal["conv"] = Field(
            "conv",
            description="images: a plain stack of convolutions and pooling, short form `filters` (a 3×3 `same` conv + "
            "ReLU + 2×2 max-pool per entry) or block by block in `layers`, with batch norm on request",
        )
        filters: list[int] | None = Field(
            None,
            min_length=1,
            description="short form: a 3×3 `same` conv + ReLU + 2×2 max-pool per entry, these filters (default "
            "[32, 64] unless `layers`)",
        )
        layers: list[ConvLayerConfig] | None = Field(
            None,
            min_length=1,
            description="long form (instead of `filters`): a list of blocks, each a conv + ReLU + pooling; a `valid` "
            "kernel that no longer fits the feature map is a config error naming the layer",
        )
        kernel_size: int = Field(3, ge=1, description="conv kernel size (the default of each layer)")
        batch_norm: bool | BatchNormConfig = Field(
            False,
            description="batch normalisation after each conv: `true`, or its settings `{momentum, epsilon, "
            "synchronized}`; the conv then has no bias",
        )
        flatten: bool = Field(True, description="flatten the last feature map (false: global average pooling)")

        @model_validator(mode="after")
        def _filters_or_layers(self):
            if self.filters is not None and self.layers is not None:
                raise ValueError("give either `filters` (the short form) or `layers`, not both")
            return self

    @classmethod
    def check_input(cls, config, shape, where: str) -> None:
        """The config's blocks fit an input of per-example `shape` (see `check_fits`)."""
        check_fits(config, shape, where)

    def __init__(self, filters=None, layers=None, kernel_size=3, batch_norm=False, flatten=True, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.layer_configs = [ConvLayerConfig(**c).model_dump() for c in block_configs(filters, layers)]
        for c in self.layer_configs:
            c["kernel_size"] = c["kernel_size"] or kernel_size
        self.kernel_size = kernel_size
        self.batch_norm = batch_norm
        norm = None if batch_norm is False else ({} if batch_norm is True else batch_norm)
        self.flatten = flatten
        self.l2 = l2
        reg = keras.regularizers.L2(l2) if l2 else None
        self.blocks = []
        for i, c in enumerate(self.layer_configs):
            block = [
                keras.layers.Conv2D(
                    c["filters"],
                    c["kernel_size"],
                    strides=c["stride"],
                    padding=c["padding"],
                    use_bias=norm is None,  # a batch norm's offset follows
                    kernel_regularizer=reg,
                    name=f"conv_{i}",
                )
            ]
            if norm is not None:
                block.append(batch_norm_layer(norm, f"bn_{i}"))
            # Every layer named, also those without variables: a Keras default name ("re_lu_8") depends on how many
            # layers the process made before, and the exports (TFLite's bytes among them) carry it.
            block.append(keras.layers.ReLU(name=f"relu_{i}"))
            if c["pool"] > 1:
                pool = keras.layers.MaxPooling2D if c["pool_type"] == "max" else keras.layers.AveragePooling2D
                block.append(pool(c["pool"], padding="same", name=f"pool_{i}"))
            self.blocks.append(block)
        self.pool = keras.layers.Flatten(name="flatten") if flatten else keras.layers.GlobalAveragePooling2D(name="gap")

    @property
    def filters(self) -> list[int]:
        return [c["filters"] for c in self.layer_configs]

    def call(self, x, training=None):
        for block in self.blocks:
            for layer in block:
                x = layer(x, training=training) if isinstance(layer, keras.layers.BatchNormalization) else layer(x)
        return self.pool(x)

    def get_config(self):
        return {
            **super().get_config(),
            "layers": self.layer_configs,
            "kernel_size": self.kernel_size,
            "batch_norm": self.batch_norm,
            "flatten": self.flatten,
            "l2": self.l2,
        }
