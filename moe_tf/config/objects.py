"""`moe_tf.Config`: an experiment config built and checked in code, as `moe-tf validate` checks a file."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from moe_tf.config.loader import apply_override, field_errors, load_config, to_yaml, validate_config
from moe_tf.config.schema import ExperimentConfig


class Config(ExperimentConfig):
    """An experiment config, checked as `moe-tf validate` checks a file: every field typed, unknown keys refused,
    cross-field rules applied. Bad values raise `moe_tf.errors.ConfigError` naming each field path.

    Build it from keyword arguments (the YAML file's top-level sections), a dict, or a YAML file with `base:`
    inheritance and `--set`-style overrides:

        config = moe_tf.Config(
            data={"sources": {"digits": {"type": "digits"}}},
            tasks=[{"name": "digit", "dataset": "digits", "label": "label"}],
            training={"epochs": 2},
        )
        config = moe_tf.Config.from_yaml("configs/digits_mmoe.yaml", ["model.experts.count=8"])
        smaller = config.override("model.experts.units=[32]", "training.batch_size=64")
    """

    def __init__(self, /, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise field_errors(e, data) from None
        self.validate_all()

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
        """The config file at `path` (its `base:` chain merged) with `overrides` ("key.path=value", as `--set`)."""
        return load_config(os.fspath(path), overrides, cls)  # type: ignore[return-value]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], overrides: Sequence[str] = ()) -> Config:
        """A config from a mapping laid out like the YAML file, with `overrides` ("key.path=value")."""
        raw: dict[str, Any] = copy.deepcopy(dict(data))
        for assignment in overrides:
            apply_override(raw, assignment)
        return validate_config(raw, cls)  # type: ignore[return-value]

    def override(self, *assignments: str) -> Config:
        """A new config: this one with `assignments` ("key.path=value", as `--set`) applied."""
        return type(self).from_dict(self.model_dump(), assignments)

    def to_yaml(self) -> str:
        """The resolved config as YAML (what `moe-tf validate` prints and a run's config.yaml holds)."""
        return to_yaml(self)


def as_config(config: ExperimentConfig | Mapping | str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
    """A config object from a config, a mapping or a YAML path, with `overrides` applied."""
    if isinstance(config, Config) and not overrides:
        return config
    if isinstance(config, ExperimentConfig):
        return Config.from_dict(config.model_dump(), overrides)
    if isinstance(config, Mapping):
        return Config.from_dict(config, overrides)
    if isinstance(config, str | os.PathLike):
        return Config.from_yaml(config, overrides)
    raise TypeError(f"config: expected a Config, a mapping or a YAML path, got {type(config).__name__}")
