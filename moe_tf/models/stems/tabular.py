"""The tabular stem: categorical and numeric inputs encoded together — an embedding per categorical input (columns
naming one `shared_embedding` table read one variable), concatenated with the numeric inputs, an optional
feature-interaction layer, then an MLP. The default stem of categorical inputs, and of numeric inputs in a run that
has categorical ones (so they meet in one stem).

`interaction: cross` stacks DCN-v2 cross layers (Wang et al. 2021, x_{l+1} = x0 ⊙ (W x_l + b) + x_l), keras-rs's
`FeatureCross`, before the MLP.
"""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.data.categorical import default_embedding_dim, table_of
from moe_tf.models.layers import DenseStack
from moe_tf.models.preprocessing import feature_size
from moe_tf.registry import STEMS


@STEMS.register("tabular")
@keras.saving.register_keras_serializable(package="moe_tf")
class TabularStem(keras.layers.Layer):
    """Args:
        inputs: {feature: spec} of the inputs it encodes (categorical specs carry `table_size` in their options).
        units: the MLP's widths ([] for none: the concatenation, or the cross layers' output, is the feature).
        interaction: `none` or `cross`.
        cross_layers: how many cross layers.
        cross_projection_dim: a low-rank cross layer's rank (None: full rank).

    Call: {feature: ids int32 [batch] (categorical) or float [batch, d] (numeric)} → [batch, features].
    """

    modalities = ("categorical", "numeric")

    class Config(StrictModel):
        type: Literal["tabular"] = "tabular"
        units: list[int] = Field(default_factory=lambda: [64], description="the MLP after the embeddings")
        interaction: Literal["none", "cross"] = Field("none", description="cross: DCN-v2 cross layers first")
        cross_layers: int = Field(2, ge=1)
        cross_projection_dim: int | None = Field(None, ge=1, description="low-rank cross layers (None: full)")

    def __init__(
        self,
        inputs,
        units=(64,),
        interaction="none",
        cross_layers=2,
        cross_projection_dim=None,
        l2=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.inputs_spec = {k: dict(v) for k, v in sorted(inputs.items())}
        self.units, self.interaction = list(units), interaction
        self.cross_layers, self.cross_projection_dim, self.l2 = cross_layers, cross_projection_dim, l2
        reg = keras.regularizers.L2(l2) if l2 else None
        self.tables: dict[str, keras.layers.Embedding] = {}
        for f, spec in self.inputs_spec.items():
            if spec["modality"] != "categorical":
                continue
            options = spec["options"]
            table = table_of(f, options)
            if table not in self.tables:
                size = int(options["table_size"])
                dim = int(options.get("embedding_dim") or default_embedding_dim(size))
                self.tables[table] = keras.layers.Embedding(
                    size, dim, embeddings_regularizer=reg, name=f"embedding_{table}"
                )
        self.cross = []
        if interaction == "cross":
            from keras_rs.layers import FeatureCross

            self.cross = [
                FeatureCross(projection_dim=cross_projection_dim, kernel_regularizer=reg, name=f"cross_{i}")
                for i in range(cross_layers)
            ]
        self.mlp = DenseStack(self.units, l2=l2, name="mlp")

    def call(self, x, training=None):
        parts = []
        for f, spec in self.inputs_spec.items():
            if spec["modality"] == "categorical" and spec["options"].get("separator"):
                parts.append(pooled(self.tables[table_of(f, spec["options"])], x[f], spec["options"]))
            elif spec["modality"] == "categorical":
                parts.append(self.tables[table_of(f, spec["options"])](x[f]))  # [batch, dim]
            else:
                parts.append(ops.reshape(x[f], (-1, feature_size(spec))))  # [batch, d]: static d for the cross
        h = ops.concatenate([ops.cast(p, self.compute_dtype) for p in parts], axis=-1) if len(parts) > 1 else parts[0]
        x0 = h
        for layer in self.cross:
            h = layer(x0, h)
        return self.mlp(h, training=training)

    def get_config(self):
        return {
            **super().get_config(),
            "inputs": self.inputs_spec,
            "units": self.units,
            "interaction": self.interaction,
            "cross_layers": self.cross_layers,
            "cross_projection_dim": self.cross_projection_dim,
            "l2": self.l2,
        }


def pooled(table, ids, options):
    """A multi-valued column's vector: the `combiner` of the embeddings of its ids [batch, max_length] (-1 is
    padding): their mean, sum, or sum / √n."""
    present = ops.cast(ids >= 0, table.compute_dtype)[..., None]  # [batch, length, 1]
    total = ops.sum(table(ops.maximum(ids, 0)) * present, axis=1)  # [batch, dim]
    count = ops.maximum(ops.sum(present, axis=1), 1.0)
    combiner = options.get("combiner", "mean")
    return total if combiner == "sum" else total / (count if combiner == "mean" else ops.sqrt(count))
