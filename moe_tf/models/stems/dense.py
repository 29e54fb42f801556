"""A flatten-then-dense stem for small images or numeric features (the default for numeric inputs)."""

from __future__ import annotations

from typing import Literal

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.models.layers import DenseStack
from moe_tf.registry import STEMS


@STEMS.register("dense")
@keras.saving.register_keras_serializable(package="moe_tf")
class DenseStem(keras.layers.Layer):
    """Flatten → DenseStack(units). Call: [batch, ...] float → [batch, units[-1]]."""

    modalities = ("image", "numeric")

    class Config(StrictModel):
        type: Literal["dense"] = Field("dense", description="images and numeric inputs: flatten, then dense layers")
        units: list[int] = Field(
            default_factory=lambda: [128], min_length=1, description="widths of the dense layers after flattening"
        )

    def __init__(self, units=(128,), l2=0.0, **kwargs):
        super().__init__(**kwargs)
        self.units = list(units)
        self.l2 = l2
        self.flatten = keras.layers.Flatten(name="flatten")  # named: a default name depends on the process's history
        self.stack = DenseStack(self.units, l2=l2, name="stack")  # named: checkpoints key variables by path

    def call(self, x, training=None):
        return self.stack(self.flatten(x), training=training)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "l2": self.l2}
