"""The tabular stem's `embeddings: distributed` tables: one keras-rs `DistributedEmbedding` for all its categorical
inputs, the large-table path.

Where each table lives is its `placement`:
- `default_device`: a plain table per feature (shared ones once) on the device the rest of the model runs on,
  trained by the run's optimizer like any variable (under mirrored/multi_worker every replica holds all of it);
- `sparsecore`: the table is sharded across the TPU chips' SparseCores, so it may be larger than any one chip's
  memory. The TPU embedding engine looks rows up and applies their gradients itself during the backward pass, with
  the table's own optimizer (`table_optimizer`, `table_learning_rate`): the run's optimizer, gradient clipping,
  loss scaling, the non-finite step guard and the task weighting's gradient surgery do not reach these tables;
- `auto`: `sparsecore` under a TPU strategy on a TPU that has SparseCores, else `default_device`.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from moe_tf.data.categorical import table_of
from moe_tf.errors import ConfigError

TABLE_OPTIMIZERS = {
    "sgd": keras.optimizers.SGD,
    "adagrad": keras.optimizers.Adagrad,
    "adam": keras.optimizers.Adam,
    "ftrl": keras.optimizers.Ftrl,
}
ENGINE = "sparsecore"


def distributed_embedding(
    features: dict[str, dict], shapes: dict[str, tuple[int, int]], placement: str, optimizer: str, learning_rate: float
):
    """A keras-rs DistributedEmbedding over the categorical `features` ({feature: spec with options}) reading the
    tables `shapes` ({table: (rows, width)}).

    Features naming one `shared_embedding` read one table; a table's rows, width and initialiser are those of the
    `keras` tables (so the two settings train alike), its combiner that of its multi-valued features.

    Raises:
        ConfigError: shared features pooling with different combiners; `sparsecore` placement off a TPU.
    """
    from keras_rs.layers import DistributedEmbedding, FeatureConfig, TableConfig

    tables: dict[str, TableConfig] = {}
    combiners: dict[str, tuple[str, str]] = {}
    configs = {}
    for f, spec in features.items():
        options = spec["options"]
        table = table_of(f, options)
        if options.get("separator"):
            combiner = options.get("combiner", "mean")
            seen = combiners.setdefault(table, (f, combiner))
            if seen[1] != combiner:
                raise ConfigError(
                    f"shared_embedding {table!r}: inputs {seen[0]!r} and {f!r} pool with different combiners "
                    f"({seen[1]} vs {combiner}); a distributed table has one combiner, so give them the same"
                )
        if table not in tables:
            rows, dim = shapes[table]
            tables[table] = TableConfig(
                name=table,
                vocabulary_size=rows,
                embedding_dim=dim,
                initializer="uniform",  # keras.layers.Embedding's
                optimizer=TABLE_OPTIMIZERS[optimizer](learning_rate=learning_rate),
                placement=placement,
            )
        dim = tables[table].embedding_dim
        shape = (None, int(options.get("max_length", 16))) if options.get("separator") else (None,)
        configs[f] = FeatureConfig(name=f, table=tables[table], input_shape=shape, output_shape=(None, dim))
    for table, (_, combiner) in combiners.items():
        tables[table].combiner = combiner
    try:
        return DistributedEmbedding(configs, name="distributed_embedding")
    except ValueError as err:
        if placement != ENGINE:
            raise
        raise ConfigError(
            f"model.stems: placement 'sparsecore' needs a TPU with SparseCores (training.strategy: tpu); here: "
            f"{err} Use placement auto (SparseCore where there is one) or default_device"
        ) from None


def engine_ids(ids, options: dict):
    """A feature's ids as the distributed layer takes them: int32 [batch], or for a multi-valued feature (ids
    [batch, max_length], -1 padding) a SparseTensor of its present ids, which the table's combiner pools."""
    if not options.get("separator"):
        return ids
    where = tf.where(ids >= 0)
    return tf.SparseTensor(where, tf.gather_nd(ids, where), tf.shape(ids, out_type=tf.int64))


def engine_tables(layer) -> list[str]:
    """The tables of a DistributedEmbedding that the TPU embedding engine holds and updates (`sparsecore`)."""
    placed = getattr(layer, "_placement_to_path_to_feature_config", {})  # keras-rs's resolved placements
    return sorted({config.table.name for config in placed.get(ENGINE, {}).values()})


def check_engine_tables(model, weighting, gradient_stats_every: int, mixed_float16: bool) -> None:
    """Refuses what cannot hold when the TPU embedding engine updates tables inside the backward pass: a weighting
    that takes several backward passes (gradient surgery), gradient statistics (extra backward passes would update
    the tables again), and mixed_float16 (the engine would apply loss-scaled gradients)."""
    tables = sorted({t for stem in model.tabular_stems() for t in stem.engine_tables()})
    if not tables:
        return
    what = f"tables {', '.join(tables)} are on SparseCore and updated by the TPU embedding engine in the backward pass"
    if weighting.gradient_based:
        raise ConfigError(
            f"training.weighting.type: {weighting.config.type} takes several backward passes, and {what} (each pass "
            "would update them); use a loss-based weighting, or placement: default_device"
        )
    if gradient_stats_every:
        raise ConfigError(f"logging.gradient_stats_every: gradient statistics take extra backward passes, and {what}")
    if mixed_float16:
        raise ConfigError(
            f"training.mixed_precision: mixed_float16 scales the loss, and {what} with unscaled updates; "
            "use mixed_bfloat16 (TPUs compute in bfloat16) or placement: default_device"
        )
