"""Builds the multi-task model from the `model` config and the data it reads (inputs, sources, tasks)."""

from __future__ import annotations

import numpy as np

from moe_tf.config.schema import ModelConfig
from moe_tf.data import TaskData
from moe_tf.errors import ConfigError
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
        elif spec.modality in DEFAULT_STEMS:
            cfg, where = STEMS.get(DEFAULT_STEMS[spec.modality]).Config(), None
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
        out[f] = cfg
    return out


def build_model(model_config: ModelConfig, data: TaskData, adapt_text: bool = True) -> MultiTaskModel:
    """Creates and builds the model (variables exist on return; call under `strategy.scope()` when distributing).

    Numeric inputs get the training split's mean and variance (when `model.normalize_numeric`); text inputs get a
    vocabulary built from the training split (`adapt_text`; without it the vocabulary comes from a checkpoint).

    Args:
        model_config: the `model` config.
        data: the TaskData (its `features`, `sources`, `tasks`).
    """
    cfg = model_config
    sources = {name: sorted(s.features) for name, s in data.sources.items()}
    stems = resolve_stems(cfg, data.features, sources)
    text = [f for f, spec in data.features.items() if spec.modality == "text"]
    if text and cfg.experts.input == "raw":
        raise ConfigError(
            f"model.experts.input: 'raw' gates read the flattened raw inputs, and text input "
            f"{text[0]!r} has no fixed-size raw form; use input 'trunk' (its stem feeds the experts)"
        )
    specs = [{"name": t.name, "units": t.output_units} for t in data.tasks]
    model = MultiTaskModel(
        cfg,
        specs,
        {f: s.to_dict() for f, s in data.features.items()},
        stems,
        list(sources.values()) if len(sources) > 1 else None,
        name="moe_tf_model",
    )
    if adapt_text:
        for f in text:
            vectorizers = model.preprocessors(f)
            vectorizers[0].adapt(data.texts(f))
            for v in vectorizers[1:]:
                v.set_vocabulary(vectorizers[0].vocabulary())
    model(example_inputs(data.features), training=False)  # creates every variable
    if cfg.freeze:
        frozen = model.freeze(cfg.freeze)
        empty = [part for part, n in frozen.items() if n == 0]
        if empty:
            raise ConfigError(
                f"model.freeze: this model has no {empty[0]} to freeze "
                f"({cfg.architecture.type}); remove it from the list"
            )
    if cfg.normalize_numeric:
        for f, spec in data.features.items():
            if spec.modality == "numeric":
                for layer in model.preprocessors(f):
                    layer.set_statistics(*data.feature_statistics(f))
    return model


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
