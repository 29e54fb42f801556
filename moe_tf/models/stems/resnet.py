"""A residual image stem: the CIFAR ResNets of He et al. (2016, §4.2), stages and widths from the config.

ResNet-20/32/56 are `blocks: 3`, `5`, `9` with the default widths [16, 32, 64]; `widths: [64, 128, 256, 512]` with
`blocks: [2, 2, 2, 2]` is the ResNet-18 layout at CIFAR resolution.
"""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field, model_validator

from moe_tf.config.base import StrictModel
from moe_tf.models.normalization import BatchNormConfig, batch_norm_layer
from moe_tf.registry import STEMS


def conv3(filters: int, stride: int, l2: float, name: str) -> keras.layers.Conv2D:
    """A 3×3 `same` convolution without bias (a batch norm follows)."""
    reg = keras.regularizers.L2(l2) if l2 else None
    return keras.layers.Conv2D(
        filters, 3, strides=stride, padding="same", use_bias=False, kernel_initializer="he_normal",
        kernel_regularizer=reg, name=name,
    )  # fmt: skip


@keras.saving.register_keras_serializable(package="moe_tf")
class BasicBlock(keras.layers.Layer):
    """conv3×3(stride) → BN → ReLU → conv3×3 → BN, plus the shortcut (a 1×1 convolution and BN when the stride or
    the width changes: He et al.'s option B), → ReLU.

    Call: [batch, H, W, C] → [batch, ⌈H/stride⌉, ⌈W/stride⌉, filters].
    """

    def __init__(self, filters, stride=1, project=False, norm=None, zero_init=False, l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.stride, self.project, self.norm = filters, stride, project, dict(norm or {})
        self.zero_init, self.l2 = zero_init, l2
        self.conv1 = conv3(filters, stride, l2, "conv1")
        self.bn1 = batch_norm_layer(self.norm, "bn1")
        self.conv2 = conv3(filters, 1, l2, "conv2")
        self.bn2 = batch_norm_layer(self.norm, "bn2")
        if zero_init:  # the block starts as the identity (Goyal et al. 2017)
            self.bn2.gamma_initializer = keras.initializers.Zeros()
        self.shortcut = None
        if project:
            reg = keras.regularizers.L2(l2) if l2 else None
            self.shortcut = [
                keras.layers.Conv2D(filters, 1, strides=stride, use_bias=False, kernel_regularizer=reg, name="proj"),
                batch_norm_layer(self.norm, "proj_bn"),
            ]

    def call(self, x, training=None):
        h = keras.ops.relu(self.bn1(self.conv1(x), training=training))
        h = self.bn2(self.conv2(h), training=training)
        if self.shortcut is not None:
            x = self.shortcut[1](self.shortcut[0](x), training=training)
        return keras.ops.relu(h + x)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "stride": self.stride,
            "project": self.project,
            "norm": self.norm,
            "zero_init": self.zero_init,
            "l2": self.l2,
        }


@STEMS.register("resnet")
@keras.saving.register_keras_serializable(package="moe_tf")
class ResNetStem(keras.layers.Layer):
    """conv3×3 (`stem_filters`, `stem_stride`) → BN → ReLU, then one stage per entry of `widths`: `blocks` basic
    blocks, the first of each stage after the first with stride 2, then global average pooling.

    Call: images [batch, H, W, C] float → [batch, widths[-1]].
    """

    modalities = ("image",)

    class Config(StrictModel):
        type: Literal["resnet"] = Field(
            "resnet",
            description="images: the CIFAR ResNets of He et al. (2016, §4.2): a 3×3 convolution, stages of basic "
            "blocks with batch norm (each stage after the first halving the feature map), then global "
            "average pooling",
        )
        widths: list[int] = Field(
            [16, 32, 64],
            min_length=1,
            description="each stage's filters; a stage after the first starts with a stride-2 block",
        )
        blocks: int | list[int] = Field(
            3,
            description="basic blocks per stage, one number (every stage) or one per stage (3: ResNet-20, 5: "
            "ResNet-32, "
            "9: ResNet-56)",
        )
        stem_filters: int | None = Field(None, ge=1, description="the first convolution's filters (default widths[0])")
        stem_stride: Literal[1, 2] = Field(1, description="2 halves the input first (inputs larger than 64×64)")
        zero_init_residual: bool = Field(
            True,
            description="each block's last batch-norm scale starts at 0, so a block starts as its shortcut (Goyal "
            "et al. 2017)",
        )
        batch_norm: BatchNormConfig = Field(
            default_factory=BatchNormConfig, description="the settings of every batch normalisation"
        )

        @model_validator(mode="after")
        def _blocks_per_stage(self):
            if any(w < 1 for w in self.widths):
                raise ValueError(f"widths must be positive, got {self.widths}")
            blocks = [self.blocks] * len(self.widths) if isinstance(self.blocks, int) else self.blocks
            if len(blocks) != len(self.widths) or any(b < 1 for b in blocks):
                raise ValueError(
                    f"blocks: one positive count, or one per stage ({len(self.widths)} widths), got {self.blocks}"
                )
            return self

    def __init__(
        self,
        widths=(16, 32, 64),
        blocks=3,
        stem_filters=None,
        stem_stride=1,
        zero_init_residual=True,
        batch_norm=None,
        l2=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.widths = [int(w) for w in widths]
        self.blocks = [blocks] * len(self.widths) if isinstance(blocks, int) else [int(b) for b in blocks]
        self.stem_filters = stem_filters or self.widths[0]
        self.stem_stride, self.zero_init_residual = stem_stride, zero_init_residual
        self.norm = BatchNormConfig.model_validate(batch_norm or {}).model_dump()
        self.l2 = l2
        self.conv = conv3(self.stem_filters, stem_stride, l2, "conv")
        self.bn = batch_norm_layer(self.norm, "bn")
        self.stages = []
        channels = self.stem_filters
        for s, (width, count) in enumerate(zip(self.widths, self.blocks)):
            for b in range(count):
                stride = 2 if s > 0 and b == 0 else 1
                block = BasicBlock(
                    width, stride, stride != 1 or channels != width, self.norm, zero_init_residual, l2,
                    name=f"stage{s}_block{b}",
                )  # fmt: skip
                self.stages.append(block)
                channels = width
        self.pool = keras.layers.GlobalAveragePooling2D(name="gap")

    def call(self, x, training=None):
        x = keras.ops.relu(self.bn(self.conv(x), training=training))
        for block in self.stages:
            x = block(x, training=training)
        return self.pool(x)

    def get_config(self):
        return {
            **super().get_config(),
            "widths": self.widths,
            "blocks": self.blocks,
            "stem_filters": self.stem_filters,
            "stem_stride": self.stem_stride,
            "zero_init_residual": self.zero_init_residual,
            "batch_norm": self.norm,
            "l2": self.l2,
        }
