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

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from moe_tf.config.objects import Config, as_config
from moe_tf.config.schema import ExperimentConfig
from moe_tf.trained import Trained, load

__all__ = ["Config", "TrainResult", "Trained", "load", "train"]


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
