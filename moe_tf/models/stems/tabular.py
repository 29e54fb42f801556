"""The tabular stem: categorical and numeric inputs encoded together — an embedding per categorical input (columns
naming one `shared_embedding` table read one variable), concatenated with the numeric inputs, an optional
feature-interaction layer, then an MLP. The default stem of categorical inputs, and of numeric inputs in a run that
has categorical ones (so they meet in one stem).

`interaction: cross` stacks DCN-v2 cross layers (Wang et al. 2021, x_{l+1} = x0 ⊙ (W x_l + b) + x_l), keras-rs's
`FeatureCross`, before the MLP.

`embeddings: distributed` puts the tables in one keras-rs `DistributedEmbedding` (moe_tf.models.distributed_tables):
on a TPU with SparseCores they are sharded across the chips (tables larger than one device); elsewhere each is one
plain table, as with `keras`.
"""

from __future__ import annotations

from typing import Literal

import keras
from keras import ops
from pydantic import Field, model_validator

from moe_tf.config.base import StrictModel
from moe_tf.data.categorical import table_of, table_shapes
from moe_tf.models.distributed_tables import TABLE_OPTIMIZERS, distributed_embedding, engine_ids, engine_tables
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
        embeddings: `keras` (a keras.layers.Embedding per table) or `distributed` (one keras-rs
            DistributedEmbedding for all of them).
        placement, table_optimizer, table_learning_rate: a distributed layer's table placement, and the optimizer
            the TPU embedding engine updates SparseCore tables with.

    Call: {feature: ids int32 [batch] (categorical) or float [batch, d] (numeric)} → [batch, features].
    """

    modalities = ("categorical", "numeric")

    class Config(StrictModel):
        type: Literal["tabular"] = Field(
            "tabular",
            description="categorical (and numeric) inputs: an embedding per categorical input, concatenated with the "
            "numeric inputs, optional DCN-v2 cross layers, then an MLP; it encodes all its inputs together",
        )
        units: list[int] = Field(
            default_factory=lambda: [64], description="the MLP's widths after the embeddings (`[]`: none)"
        )
        interaction: Literal["none", "cross"] = Field(
            "none", description="`cross` adds DCN-v2 cross layers (keras-rs `FeatureCross`) before the MLP"
        )
        cross_layers: int = Field(2, ge=1, description="how many cross layers")
        cross_projection_dim: int | None = Field(
            None, ge=1, description="low-rank cross layers of this rank (null: full rank)"
        )
        embeddings: Literal["keras", "distributed"] = Field(
            "keras",
            description="`keras` (a `keras.layers.Embedding` per table) or `distributed` (one keras-rs "
            "`DistributedEmbedding`: tables sharded on TPU SparseCores)",
        )
        placement: Literal["auto", "default_device", "sparsecore"] = Field(
            "auto",
            description="`embeddings: distributed`: `auto` (SparseCore where there is one), `default_device` or "
            "`sparsecore`",
        )
        table_optimizer: Literal[tuple(TABLE_OPTIMIZERS)] = Field(  # type: ignore[valid-type]
            "adam",
            description="SparseCore tables: the TPU embedding engine's optimizer, `sgd`, `adagrad`, `adam` or `ftrl`",
        )
        table_learning_rate: float = Field(0.001, gt=0, description="SparseCore tables: that optimizer's rate")

        @model_validator(mode="after")
        def _check(self):
            fields = ("placement", "table_optimizer", "table_learning_rate")
            # values, not the fields set: a run's written config.yaml holds every default
            set_here = [f for f in fields if getattr(self, f) != type(self).model_fields[f].default]
            if self.embeddings == "keras" and set_here:
                raise ValueError(f"{set_here[0]} applies to distributed tables: set embeddings: distributed")
            return self

    def __init__(
        self,
        inputs,
        units=(64,),
        interaction="none",
        cross_layers=2,
        cross_projection_dim=None,
        embeddings="keras",
        placement="auto",
        table_optimizer="adam",
        table_learning_rate=0.001,
        l2=0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.inputs_spec = {k: dict(v) for k, v in sorted(inputs.items())}
        self.units, self.interaction = list(units), interaction
        self.cross_layers, self.cross_projection_dim, self.l2 = cross_layers, cross_projection_dim, l2
        self.embeddings, self.placement = embeddings, placement
        self.table_optimizer, self.table_learning_rate = table_optimizer, table_learning_rate
        reg = keras.regularizers.L2(l2) if l2 else None
        self.tables: dict[str, keras.layers.Embedding] = {}
        categorical = {f: s for f, s in self.inputs_spec.items() if s["modality"] == "categorical"}
        self.table_shapes = table_shapes(categorical)
        self.distributed = None
        if embeddings == "distributed" and categorical:
            self.distributed = distributed_embedding(
                categorical, self.table_shapes, placement, table_optimizer, table_learning_rate
            )
        else:
            for table, (size, dim) in self.table_shapes.items():
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

    def engine_tables(self) -> list[str]:
        """The tables the TPU embedding engine holds and updates (placement sparsecore)."""
        return engine_tables(self.distributed) if self.distributed is not None else []

    def describe_tables(self) -> str:
        """Its embedding tables as the start of a run lists them: rows × width each, the sum, where they live."""
        shapes, engine = self.table_shapes, set(self.engine_tables())
        if not shapes:
            return ""
        count = sum(rows * dim for rows, dim in shapes.values())
        where = []
        if engine:
            where.append(f"{', '.join(sorted(engine))} sharded across the TPU's SparseCores")
        if len(engine) < len(shapes):
            where.append("the others held whole by every replica" if engine else "held whole by every replica")
        listed = ", ".join(f"{t} {rows:,}×{dim}" for t, (rows, dim) in sorted(shapes.items()))
        size = f"{count * 4 / 2**20:,.1f} MiB" if count * 4 >= 2**20 else f"{count * 4 / 2**10:,.1f} KiB"
        size += " in float32, before the optimizer's slots"
        return f"embedding tables ({self.embeddings}): {listed}; {count:,} parameters ({size}), {'; '.join(where)}"

    def call(self, x, training=None):
        parts = []
        vectors = self._distributed(x) if self.distributed is not None else {}
        for f, spec in self.inputs_spec.items():
            if f in vectors:
                parts.append(vectors[f])
            elif spec["modality"] == "categorical" and spec["options"].get("separator"):
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

    def _distributed(self, x) -> dict:
        """{categorical feature: [batch, dim]} from the distributed layer. Its default-device tables get the model's
        L2 penalty as keras.layers.Embedding tables do (SparseCore tables are not Keras variables)."""
        layer = self.distributed
        assert layer is not None
        ids = {f: engine_ids(x[f], s["options"]) for f, s in self.inputs_spec.items() if s["modality"] == "categorical"}
        vectors = layer(ids)
        if self.l2:
            for variable in layer.trainable_weights:
                if variable.regularizer is None and not variable.path.endswith("_gradient_trap_dummy"):
                    variable.regularizer = keras.regularizers.L2(self.l2)
        return vectors

    def get_config(self):
        return {
            **super().get_config(),
            "inputs": self.inputs_spec,
            "units": self.units,
            "interaction": self.interaction,
            "cross_layers": self.cross_layers,
            "cross_projection_dim": self.cross_projection_dim,
            "embeddings": self.embeddings,
            "placement": self.placement,
            "table_optimizer": self.table_optimizer,
            "table_learning_rate": self.table_learning_rate,
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
