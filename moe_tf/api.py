"""The Python entry points: `Config` to build and check a config in code, `train` to run one (what `moe-tf train`
runs), `load` to evaluate and predict with a trained run.

    import moe_tf

    config = moe_tf.Config.from_yaml("configs/digits_mmoe.yaml", ["training.epochs=2"])
    result = moe_tf.train(config, output_dir="runs/digits")
    print(result.tasks["digit"]["accuracy"], result.export_dir)

    trained = moe_tf.load("runs/digits")
    probabilities = trained.predict({"image": images})["digit"]  # [N, 10]
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from moe_tf.config.loader import apply_override, format_error, in_file, resolve_config_dict, to_yaml, validate_config
from moe_tf.config.schema import ExperimentConfig
from moe_tf.errors import ConfigError
from moe_tf.trained import Trained, load

__all__ = ["Config", "TrainResult", "Trained", "load", "train"]


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
            raise ConfigError("\n".join(format_error(err, data, ExperimentConfig) for err in e.errors())) from None
        self.validate_all()

    @classmethod
    def from_yaml(cls, path: str | os.PathLike, overrides: Sequence[str] = ()) -> Config:
        """The config file at `path` (its `base:` chain merged) with `overrides` ("key.path=value", as `--set`)."""
        path = os.fspath(path)
        data = resolve_config_dict(path, overrides)
        try:
            return validate_config(data, cls)  # type: ignore[return-value]
        except ConfigError as e:
            raise in_file(path, e) from None

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


@dataclass
class TrainResult:
    """What `train` returns.

    Attributes:
        metrics: the run's metrics.json: the test split's metrics per task ("tasks"), the step, the seconds, and
            under "eval" the final weights' evaluation.
        run_dir: the run directory (checkpoints, TensorBoard logs, config.yaml, metrics.json).
        export_dir: the SavedModel serving every task (None with `export=False`, or on a non-chief worker).
        config: the config the run trained.
    """

    metrics: dict
    run_dir: str
    export_dir: str | None
    config: Config

    @property
    def tasks(self) -> dict[str, dict]:
        """{task: {metric: value}} on the test split."""
        return self.metrics["tasks"]


def train(
    config: ExperimentConfig | Mapping | str | os.PathLike,
    overrides: Sequence[str] = (),
    output_dir: str | os.PathLike | None = None,
    *,
    resume: bool = False,
    export: bool = True,
    init_from: str | None = None,
    overwrite: bool = False,
    allow_data_change: bool = False,
) -> TrainResult:
    """Trains a config exactly as `moe-tf train` does (the CLI calls this function).

    Args:
        config: a `Config`, a mapping laid out like the YAML file, or the path of a YAML file.
        overrides: "key.path=value" assignments, as `--set`.
        output_dir: the run directory (default: experiment.output_dir/experiment.name).
        resume: continue the run in `output_dir` from its last checkpoint (`--resume`).
        export: write the SavedModel at the end (`--no-export` is False).
        init_from: a trained run directory whose variables start this run, matched by name (`--init-from`).
        overwrite: replace an existing run in `output_dir`, once the new one has a checkpoint (`--overwrite`).
        allow_data_change: resuming, read a streamed source's changed files again (`--allow-data-change`).

    Raises:
        moe_tf.errors.ConfigError: an invalid config; moe_tf.errors.MoeTfError: bad data, a non-finite stop, a
        lost worker; moe_tf.errors.Interrupted: SIGINT/SIGTERM stopped training after a checkpoint.
    """
    from moe_tf.run import train as train_run

    config = as_config(config, overrides)
    run_dir = (
        os.fspath(output_dir) if output_dir else os.path.join(config.experiment.output_dir, config.experiment.name)
    )
    metrics = train_run(
        config,
        run_dir,
        resume=resume,
        export=export,
        init_from=init_from,
        overwrite=overwrite,
        allow_data_change=allow_data_change,
    )
    export_dir = os.path.join(run_dir, "export")
    exported = export and os.path.isfile(os.path.join(export_dir, "saved_model.pb"))
    return TrainResult(metrics, run_dir, export_dir if exported else None, config)
