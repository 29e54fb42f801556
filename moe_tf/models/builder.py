"""Builds the multi-task model from the `model` config and the data it reads (inputs, sources, tasks)."""

from __future__ import annotations

from collections import Counter

import numpy as np

from moe_tf.config.schema import ModelConfig
from moe_tf.data import TaskData
from moe_tf.data.categorical import table_of, table_size, vocabulary_from_counts
from moe_tf.errors import ConfigError, DataError
from moe_tf.models.categorical import quantile_boundaries
from moe_tf.models.multitask import MultiTaskModel
from moe_tf.models.stems import DEFAULT_STEMS
from moe_tf.registry import STEMS


def resolve_stems(model_cfg: ModelConfig, features: dict, sources: dict[str, list[str]]) -> dict:
    """Each input's stem config. The most specific entry wins: `model.stems.<feature>`, `model.stems.<source>`,
    `model.stems.<modality>`, then `model.stem`, then the modality's default stem.

    Args:
        model_cfg: the `model` config.
        features: {feature: FeatureSpec}.
        sources: {source name: [its features]}.

    Returns:
        {feature: the stem's Config}.
    """
    stems, single = model_cfg.stems, model_cfg.stem
    modalities = {spec.modality for spec in features.values()}
    defaults = dict(DEFAULT_STEMS)
    if "categorical" in modalities:
        defaults["numeric"] = DEFAULT_STEMS["categorical"]
    known = set(features) | set(sources) | modalities | set(DEFAULT_STEMS) | {"text"}
    for key in stems:
        if key not in known:
            raise ConfigError(
                f"model.stems.{key}: not a feature, source or modality of this run; "
                f"use one of {', '.join(sorted(known))}"
            )
    out = {}
    for f, spec in features.items():
        owners = [s for s, fs in sources.items() if f in fs and s in stems]
        if f in stems:
            cfg, where = stems[f], f"model.stems.{f}"
        elif owners:
            cfg, where = stems[owners[0]], f"model.stems.{owners[0]}"
        elif spec.modality in stems:
            cfg, where = stems[spec.modality], f"model.stems.{spec.modality}"
        elif single is not None and spec.modality in STEMS.get(single.type).modalities:
            cfg, where = single, "model.stem"
        elif spec.modality == "numeric" and "categorical" in modalities and "categorical" in stems:
            cfg, where = stems["categorical"], "model.stems.categorical"  # numeric inputs join the tabular stem
        elif spec.modality in defaults:
            cfg, where = STEMS.get(defaults[spec.modality]).Config(), None
        else:
            raise ConfigError(
                f"input {f!r} is {spec.modality}, and no stem takes {spec.modality} inputs yet; "
                f"stems take: " + ", ".join(f"{k} ({', '.join(STEMS.get(k).modalities)})" for k in STEMS.keys())
            )
        stem_cls = STEMS.get(cfg.type)
        if spec.modality not in stem_cls.modalities:
            raise ConfigError(
                f"{where}: stem {cfg.type!r} does not take {spec.modality} inputs (feature {f!r}, "
                f"shape {list(spec.shape)}); it takes {', '.join(stem_cls.modalities)}"
            )
        if hasattr(stem_cls, "check_input"):  # a stem that can tell a config does not fit the input's shape
            stem_cls.check_input(cfg, spec.shape, where or f"the default {cfg.type} stem")
        norm = getattr(cfg, "batch_norm", None)
        if len(sources) > 1 and getattr(norm, "synchronized", False):
            raise ConfigError(
                f"{where}.batch_norm.synchronized: not in a run with several sources: a stem runs only on the batches "
                "of the sources that have its input, in a branch that cannot hold a cross-replica sum; use "
                "synchronized: false (each replica normalises over its part of the batch)"
            )
        out[f] = cfg
    tabular = {f: cfg for f, cfg in out.items() if cfg.type == "tabular"}
    first = next(iter(tabular), None)
    for f, cfg in tabular.items():
        if cfg != tabular[first]:
            raise ConfigError(
                f"inputs {first!r} and {f!r} have different tabular stem settings; the tabular stem encodes all its "
                "inputs together, so give it one config (model.stems.categorical, or model.stem)"
            )
    return out


def build_model(
    model_config: ModelConfig, data: TaskData, vocabularies: dict[str, list[str]] | None = None, warn=print
) -> MultiTaskModel:
    """Creates and builds the model (variables exist on return; call under `strategy.scope()` when distributing).

    Numeric inputs get the training split's mean and variance (when `model.normalize_numeric`; 0/1 indicator
    elements stay unscaled). Text and categorical inputs get a vocabulary: the one in `vocabularies` (from a
    checkpoint: a resumed, restored or --init-from run), else one built from the training split.

    Args:
        model_config: the `model` config.
        data: the TaskData (its `features`, `sources`, `tasks`).
        vocabularies: {feature: tokens} that take the place of building them from data.
        warn: prints a warning (a vocabulary cut at `max_tokens`).
    """
    cfg = model_config
    vocabularies = dict(vocabularies or {})
    sources = {name: sorted(s.features) for name, s in data.sources.items()}
    stems = resolve_stems(cfg, data.features, sources)
    unsized = [f for f, spec in data.features.items() if spec.modality in ("text", "categorical")]
    if unsized and cfg.experts.input == "raw":
        raise ConfigError(
            f"model.experts.input: 'raw' gates read the flattened raw inputs, and {data.features[unsized[0]].modality} "
            f"input {unsized[0]!r} has no fixed-size raw form; use input 'trunk' (its stem feeds the experts)"
        )
    categorical = categorical_vocabularies(data, vocabularies, warn)
    vocabularies.update(categorical)
    inputs = {f: s.to_dict() for f, s in data.features.items()}
    for f, spec in inputs.items():
        if spec["modality"] == "categorical":
            spec["options"]["table_size"] = table_size(spec["options"], len(categorical.get(f, [])))
    specs = [
        {"name": t.name, "units": t.output_units, **({"product_of": t.product_of} if t.product_of else {})}
        for t in data.tasks
    ]
    model = MultiTaskModel(
        cfg,
        specs,
        inputs,
        stems,
        list(sources.values()) if len(sources) > 1 else None,
        name="moe_tf_model",
    )
    for f, layers in model.vocabulary_layers().items():
        if f in vocabularies:
            for layer in layers:
                layer.set_vocabulary(vocabularies[f])
        else:  # a text feature: its vectorizer builds the vocabulary from the training split
            layers[0].adapt(data.texts(f))
            for layer in layers[1:]:
                layer.set_vocabulary(layers[0].vocabulary())
    model(example_inputs(data.features), training=False)  # creates every variable
    if cfg.freeze:
        frozen = model.freeze(cfg.freeze)
        empty = [part for part, n in frozen.items() if n == 0]
        if empty:
            raise ConfigError(
                f"model.freeze: this model has no {empty[0]} to freeze "
                f"({cfg.architecture.type}); remove it from the list"
            )
    for f, feature in data.features.items():
        if feature.modality == "numeric":
            for layer in model.preprocessors(f):
                layer.set_statistics(*data.feature_statistics(f))
        elif feature.options.get("buckets"):
            values = data.bucket_values(f)
            for layer in model.preprocessors(f):
                layer.set_boundaries(quantile_boundaries(values, feature.options["buckets"]))
    return model


def categorical_vocabularies(data: TaskData, given: dict[str, list[str]], warn=print) -> dict[str, list[str]]:
    """{categorical feature: vocabulary} (none for hashed features): `given` ones (from a checkpoint), else built
    from the training split. Features naming one `shared_embedding` table share one vocabulary, built from all their
    values, and must agree on its settings and the embedding width."""
    tables: dict[str, list[str]] = {}
    for f, spec in data.features.items():
        if spec.modality == "categorical":
            tables.setdefault(table_of(f, spec.options), []).append(f)
    out = {}
    for table, features in tables.items():
        options = data.features[features[0]].options
        for f in features[1:]:
            other = data.features[f].options
            for key in ("embedding_dim", "hash_buckets", "max_tokens", "min_count", "oov_buckets", "missing"):
                if options.get(key) != other.get(key):
                    raise ConfigError(
                        f"shared_embedding {table!r}: inputs {features[0]!r} and {f!r} share one table, but their "
                        f"{key} differ ({options.get(key)} vs {other.get(key)}); give them the same settings"
                    )
            if data.features[f].dtype != data.features[features[0]].dtype:
                raise ConfigError(
                    f"shared_embedding {table!r}: inputs {features[0]!r} ({data.features[features[0]].dtype}) and "
                    f"{f!r} ({data.features[f].dtype}) share one table but hold different kinds of values"
                )
        if options.get("hash_buckets") or options.get("buckets"):
            continue
        known = [f for f in features if f in given]
        if known:
            tokens = given[known[0]]
        else:
            counts: Counter = Counter()
            for f in features:
                counts.update(data.value_counts(f))
            tokens, beyond, occurrences = vocabulary_from_counts(counts, options)
            if beyond:
                warn(
                    f"warning: categorical input {' and '.join(map(repr, features))}: {beyond:,} more values "
                    f"({occurrences:,} training examples) than max_tokens {options['max_tokens']:,} go to OOV"
                )
            if not tokens:
                raise DataError(
                    f"categorical input {features[0]!r} has no value in the training split that is not missing "
                    f"(missing: {options.get('missing')}) and seen at least min_count {options.get('min_count', 1)} "
                    "times; drop the input or lower min_count"
                )
        out.update({f: list(tokens) for f in features})
    return out


def example_inputs(features: dict, batch: int = 1) -> dict:
    """A batch of zeros for every input: {feature: [batch, *shape]}."""
    return {
        f: np.full((batch, *spec.shape), "", dtype=object)
        if spec.dtype == "string"
        else np.zeros((batch, *spec.shape), dtype=spec.dtype)
        for f, spec in features.items()
    }


def count_params(model) -> int:
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))
