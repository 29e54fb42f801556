"""Whole runs, for the CLI, the notebooks and the tests: `train` (with logs, checkpoints, metrics.json and the
export), `evaluate` and `export` of a finished run.

`train` reads as the phases of a run — prepare → restore or init → fit → finalize → write outputs — each a short
function below it, over the `Run` that moe_tf.components builds (the one place where parts are wired).
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import keras
import tensorflow as tf

from moe_tf.components import Components, Observer, Run, build_components, build_run, restore_components
from moe_tf.config.loader import to_yaml
from moe_tf.config.schema import ExperimentConfig
from moe_tf.data import TaskData
from moe_tf.data.base import FeatureSpec
from moe_tf.data.streamed import STATISTICS_FILE, StoredPass, pass_records_json, read_stored_pass
from moe_tf.data.tasks import TaskInfo
from moe_tf.errors import ConfigError, Interrupted, MoeTfError, error_line
from moe_tf.export.saved_model import export_model
from moe_tf.logging.progress import Progress, summary_table
from moe_tf.logging.tensorboard import purge_after
from moe_tf.models import count_params
from moe_tf.models.stems.applications import check_weights_files
from moe_tf.run_dir import Replacement, atomic_write, read_run_config
from moe_tf.training import determinism
from moe_tf.training.averaging import short_run_warning
from moe_tf.training.checkpoints import checkpoint_step, list_checkpoints, resume_vocabularies
from moe_tf.training.distillation import distillation_report, report_lines
from moe_tf.training.hooks import Stopped
from moe_tf.training.init_from import checkpoint_of, vocabularies_of
from moe_tf.training.init_from import describe as init_lines
from moe_tf.training.init_from import init_from as initialise_from
from moe_tf.training.part_rates import PartRates
from moe_tf.training.strategy import build_strategy, is_chief
from moe_tf.training.trainer import total_steps

# What a lost or stopped peer worker looks like to the survivors' collectives.
PEER_FAILURES = (
    tf.errors.UnavailableError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
    tf.errors.AbortedError,
)


def train(
    config: ExperimentConfig,
    run_dir: str,
    resume: bool = False,
    export: bool = True,
    init_from: str | None = None,
    overwrite: bool = False,
    observer: Observer | None = None,
    allow_data_change: bool = False,
) -> dict:
    """Trains, evaluates on the test split, writes metrics.json and (on the chief) the export. Returns metrics:
    the test split's, and under "eval" the evaluation of the final weights (the best one's, if early stopping
    restored it).

    Args:
        init_from: a trained run directory whose variables (and text vocabularies) start this run, matched by name;
            ignored when resuming from a checkpoint of this run.
        overwrite: replace an existing run in `run_dir` (only once this run has written its first checkpoint).
        allow_data_change: resuming, read a streamed source's changed files again instead of refusing them.
        observer: called as observer(step, eval_summary) after each evaluation; returning True stops training there
            (as early stopping does: the test split is still evaluated and metrics.json written). Search uses it
            to prune a trial.

    Raises:
        Interrupted: SIGINT/SIGTERM stopped training after a checkpoint (exit code 3; the message says how to resume).
        MoeTfError: bad input, a non-finite stop, a lost multi-worker peer; nothing already written is damaged.
    """
    if overwrite and resume:
        raise ConfigError(
            "--overwrite and --resume exclude each other: --resume continues the run, --overwrite replaces it"
        )
    strategy = build_strategy(config.training)  # first: multi-worker must start before any other op
    chief = is_chief(strategy)
    created = chief and not os.path.exists(run_dir)
    replacement = prepare_run_dir(config, run_dir, resume, overwrite) if chief else None
    try:
        stored = read_stored_pass(run_dir, "rescan" if allow_data_change else "refuse") if resume else None
        run = prepare(config, run_dir, strategy, chief, resume, init_from, replacement, observer, stored)
        with run:
            restore_or_init(run, resume, init_from)
            with translated_errors(run):
                fitted = fit(run)
                test, final_eval = finalize(run, fitted)
        metrics = run_metrics(run, fitted, test, final_eval)
        write_outputs(run, fitted, metrics, export)
        return metrics
    except BaseException as e:
        if replacement is not None and replacement.pending:
            note = replacement.roll_back()
            if isinstance(e, MoeTfError):
                raise type(e)(f"{e}\n{note}") from None
        elif created and not _holds_anything(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # a run that never started leaves no directory behind
        raise


@dataclass
class Fitted:
    """What `fit` leaves: the last step, the step it started from, its seconds and the last evaluation
    ((step, summary), or None)."""

    step: int
    start_step: int
    seconds: float
    last_eval: tuple[int, dict] | None


def prepare(
    config: ExperimentConfig,
    run_dir: str,
    strategy: tf.distribute.Strategy,
    chief: bool,
    resume: bool,
    init_from: str | None,
    replacement: Replacement | None,
    observer: Observer | None,
    stored: StoredPass | None = None,
) -> Run:
    """Seeds, builds the run and says what it is; a bad --init-from, a missing test split or a profile window
    outside the run fail here, before training."""
    keras.utils.set_random_seed(config.experiment.seed)
    progress = Progress(config.logging.progress, enabled=chief)
    progress.print(
        f"strategy: {config.training.strategy} ({type(strategy).__name__.lstrip('_')}) with "
        f"{strategy.num_replicas_in_sync} replica(s); global batch {config.training.batch_size}"
    )
    if replacement is not None:
        progress.print(replacement.describe())
    if config.training.deterministic:
        determinism.enable()
    if init_from:
        checkpoint_of(init_from)  # a wrong --init-from fails before any data is read
    if not resume:
        check_weights_files(config.model)  # a pretrained stem's file, likewise
    if stored is not None and stored.records:
        progress.print(
            f"data: the streamed files' statistics and counts are read from {STATISTICS_FILE} (files that changed, "
            "with --allow-data-change, are read again)"
        )
    # Resuming: the checkpoint's vocabularies, not ones rebuilt from (possibly changed) data; --init-from: the old
    # run's, so its embeddings keep meaning the same values.
    resuming = resume and bool(list_checkpoints(os.path.join(run_dir, "checkpoints")))
    vocabularies = resume_vocabularies(run_dir) if resuming else vocabularies_of(init_from) if init_from else None
    parts = build_components(config, strategy, vocabularies=vocabularies, stored=stored, warn=progress.print)
    if not resuming:  # pretrained stems start a new run (--init-from's weights then replace those it matches)
        for line in parts.model.load_pretrained():
            progress.print(line)
    for line in describe(parts):
        progress.print(line)
    parts.data.require_split("test")  # no test split fails now, not after training
    profile, steps = config.training.profile, total_steps(config.training, parts.data)
    if profile is not None and profile.start_step >= steps:
        raise ConfigError(
            f"training.profile.start_step: {profile.start_step} is not a step of this run (it trains "
            f"steps 0–{steps - 1})"
        )
    momentum = config.training.ema_momentum
    warning = short_run_warning(momentum, steps) if momentum is not None else None
    if warning:
        progress.print(warning)
    return build_run(
        config, run_dir, parts, progress, chief=chief, resuming=resuming, replacement=replacement, observer=observer
    )


def describe(parts: Components) -> list[str]:
    """What the run reads and trains: each source's splits and inputs, the sampling, the tasks, the model."""
    config, data = parts.config, parts.data
    lines = []
    for name, source in data.sources.items():
        sizes = ", ".join(f"{k} {v}" for k, v in source.sizes.items())
        inputs = ", ".join(input_line(data, f, s, config.model.normalize_numeric) for f, s in source.features.items())
        lines.append(f"data {name!r}: {sizes} examples; inputs: {inputs}")
    if data.multi_source:
        lines.append(
            f"sampling ({config.data.sampling.type}): "
            + ", ".join(f"{name} {q:.3f}" for name, q in zip(data.sources, data.source_probabilities()))
        )
    lines.append("tasks: " + ", ".join(task_line(t, data.tasks) for t in data.tasks))
    gates = f" with {config.model.gate.type} gates" if parts.model.task_gates() else ""
    experts = " on the raw inputs" if gates and config.model.experts.input == "raw" else ""
    average = (
        f"; evaluated on a moving average of the weights (ema_momentum {config.training.ema_momentum})"
        if parts.average is not None
        else ""
    )
    lines.append(
        f"model: {config.model.architecture.type}{gates}{experts}, {count_params(parts.model):,} trainable "
        f"parameters; weighting: {config.training.weighting.type}{average}"
    )
    lines += [text for stem in parts.model.tabular_stems()[:1] if (text := stem.describe_tables())]
    rates = PartRates(config.training.optimizer.parts, parts.model, parts.strategy)
    if rates:
        lines.append(rates.describe())
    if parts.distillation is not None:
        lines.append(parts.distillation.describe())
    return lines


def input_line(data: TaskData, name: str, spec: FeatureSpec, normalize: bool) -> str:
    """One input as the start of a run lists it: modality, dtype and shape, and what its preprocessing does that a
    user might not expect (0/1 columns left unscaled, imputed columns, a categorical input's vocabulary or hash)."""
    text = f"{name} {spec.modality} {spec.dtype}{list(spec.shape)}"
    notes = []
    if spec.modality == "numeric" and normalize:
        _, _, indicator = data.feature_statistics(name)
        if indicator.any():
            notes.append(f"{int(indicator.sum())} of {indicator.size} 0/1 columns left unscaled")
    if spec.options.get("nullable"):
        notes.append(f"{sum(spec.options['nullable'])} with missing values imputed + indicator")
    if spec.options.get("hash_buckets"):
        notes.append(f"hashed into {spec.options['hash_buckets']}")
    if spec.options.get("buckets"):
        notes.append(f"{spec.options['buckets']} quantile buckets of {spec.options.get('column', name)}")
    return f"{text} ({'; '.join(notes)})" if notes else text


def task_line(task: TaskInfo, tasks: list[TaskInfo]) -> str:
    """One task as the start of a run lists it."""
    text = f"{task.name} ({task.kind} on {task.source}, {task.num_classes} classes"
    if task.product_of:
        text += f", = {' × '.join(task.product_of)}"
    products = [t.name for t in tasks if task.name in (t.product_of or [])]
    if products:
        text += f", factor of {', '.join(products)}" + (", no loss of its own" if task.weight == 0 else "")
    return text + ")"


def restore_or_init(run: Run, resume: bool, init_from: str | None) -> None:
    """Resumes from the run's newest readable checkpoint (dropping the events logged after it), or starts from
    --init-from's weights; writes config.yaml and, on a fresh start, the config and hparams to TensorBoard."""
    config, progress = run.config, run.progress
    restored = None
    if resume:
        restored = run.checkpointer.restore_latest(warn=progress.print)
        run.trainer.guard.restored()
        progress.print(f"resumed from step {restored}" if restored is not None else "no checkpoint: starting fresh")
        log_dir = os.path.join(run.run_dir, "logs")
        if run.chief and os.path.isdir(log_dir):
            purged = purge_after(log_dir, -1 if restored is None else restored)
            if purged:
                progress.print(
                    f"TensorBoard: removed {purged} event(s) logged after step {restored or 0} by the "
                    "interrupted run (they are logged again)"
                )
    if init_from and not run.resuming:
        report = initialise_from(init_from, run.parts.model)
        for line in init_lines(report):
            progress.print(line)
        if run.chief:
            atomic_write(os.path.join(run.run_dir, "init_from.json"), json.dumps(report, indent=2))
    elif init_from:
        progress.print(f"--init-from {init_from} ignored: resuming from this run's own checkpoint")
    if run.chief:
        atomic_write(os.path.join(run.run_dir, "config.yaml"), to_yaml(config))
        records = run.parts.data.pass_records()
        if records:  # what --resume, evaluate and export read instead of passing over the files again
            atomic_write(os.path.join(run.run_dir, STATISTICS_FILE), pass_records_json(records))
    if restored is None:
        run.tensorboard.config(to_yaml(config))  # a resumed run's config text is already in its logs at step 0
        run.tensorboard.hparams(config.model_dump(), os.path.basename(os.path.abspath(run.run_dir)))


def fit(run: Run) -> Fitted:
    """Trains to the end (or early stopping); a stop request ends it after a checkpoint with `Interrupted`."""
    data, batch = run.parts.data, run.config.training.batch_size
    started = time.perf_counter()
    start_step = int(run.trainer.optimizer.iterations.numpy())
    try:
        with run.stop_request:
            step = run.trainer.fit(run.hooks, data.eval_dataset("eval", batch) if data.has_split("eval") else None)
    except Stopped as stopped:
        where = run.checkpointer.latest.latest_checkpoint if run.chief else "the chief's run directory"
        workers = " on every worker (same TF_CONFIG)" if run.config.training.strategy == "multi_worker" else ""
        raise Interrupted(
            f"{stopped.reason} at step {stopped.step}: checkpoint written ({where}). Resume"
            f"{workers} with:\n  {resume_command(run.run_dir)}"
        ) from None
    return Fitted(step, start_step, time.perf_counter() - started, run.hooks.last_eval)


def finalize(run: Run, fitted: Fitted) -> tuple[dict, tuple[int, dict] | None]:
    """Installs the weights the run keeps (the best checkpoint's, then the moving average) and evaluates them on
    the test split (logged, and the gate figure). Returns (test summary, the final weights' eval (step, summary))."""
    config, progress, parts = run.config, run.progress, run.parts
    stopping, batch = config.training.early_stopping, config.training.batch_size
    final_eval = fitted.last_eval
    best = stopping.monitor and stopping.restore_best and run.checkpointer.restore_best()
    if best:
        progress.print(f"restored the best checkpoint ({stopping.monitor} = {run.early_stopping.best_value:.4f})")
    if parts.average is not None:
        parts.average.install()  # what training evaluated: the test split and the export use the averages
        progress.print(f"weights: the moving average (training.ema_momentum {config.training.ema_momentum})")
    if best:  # the best evaluation was before a resume: evaluate the restored weights again
        final_eval = run.hooks.best_eval or (
            checkpoint_step(run.checkpointer.best.latest_checkpoint),
            run.trainer.evaluate(parts.data.eval_dataset("eval", batch)),
        )
    test = run.trainer.evaluate(parts.data.eval_dataset("test", batch))
    run.tensorboard.eval(fitted.step, test, split="test")
    run.gate_report.write(test, f"mean gate weight per expert (test split, step {fitted.step})")
    return test, final_eval


@contextlib.contextmanager
def translated_errors(run: Run) -> Iterator[None]:
    """A missing deterministic kernel or a lost multi-worker peer becomes a MoeTfError that says what to do."""
    strategy = run.config.training.strategy
    try:
        yield
    except tf.errors.UnimplementedError as e:
        if not run.config.training.deterministic:
            raise
        raise MoeTfError(
            f"training.deterministic: an op has no deterministic implementation on this device: "
            f"{error_line(e)}; set training.deterministic: false, or move that op's model part to "
            "another device"
        ) from None
    except PEER_FAILURES as e:
        if strategy != "multi_worker":
            raise
        where = run.checkpointer.latest.latest_checkpoint if run.chief else "kept"
        raise MoeTfError(
            f"multi_worker: lost contact with another worker ({type(e).__name__}: {error_line(e)}); "
            f"the last checkpoint is {where}. Restart every worker with:\n  "
            f"{resume_command(run.run_dir)}"
        ) from None


def run_metrics(run: Run, fitted: Fitted, test: dict, final_eval: tuple[int, dict] | None) -> dict:
    """metrics.json (docs/guides/what-a-run-writes.md)."""
    seconds = fitted.seconds
    metrics = {
        "tasks": test["tasks"],
        "split": "test",
        "step": fitted.step,
        "loss": test["loss"],
        "examples_per_sec": (fitted.step - fitted.start_step) * run.config.training.batch_size / max(seconds, 1e-9),
        "train_seconds": seconds,
        "nonfinite_steps": int(run.trainer.guard.total.numpy()),
    }
    if final_eval is not None:
        metrics["eval"] = {"step": final_eval[0], "loss": final_eval[1]["loss"], "tasks": final_eval[1]["tasks"]}
    return metrics


def write_outputs(run: Run, fitted: Fitted, metrics: dict, export: bool) -> None:
    """Prints the test table; on the chief writes metrics.json, the export and the distillation report."""
    progress, parts = run.progress, run.parts
    progress.print(summary_table(metrics, "test"))
    progress.print(
        f"{fitted.step - fitted.start_step} steps in {fitted.seconds:.1f} s "
        f"({metrics['examples_per_sec']:,.0f} examples/s)"
    )
    if not run.chief:
        return
    atomic_write(os.path.join(run.run_dir, "metrics.json"), json.dumps(metrics, indent=2))
    if export:
        path = export_model(parts.model, run.config, parts.data, os.path.join(run.run_dir, "export"))
        progress.print(f"exported SavedModel: {path}")
    if parts.distillation is not None:
        report = distillation_report(parts.distillation, parts.model, metrics, run.run_dir)
        atomic_write(os.path.join(run.run_dir, "distillation.json"), json.dumps(report, indent=2))
        for line in report_lines(report):
            progress.print(line)
    progress.print(f"TensorBoard: tensorboard --logdir {os.path.dirname(os.path.abspath(run.run_dir))}")


def prepare_run_dir(
    config: ExperimentConfig, run_dir: str, resume: bool, overwrite: bool = False
) -> Replacement | None:
    """Creates the run directory; refuses to mix a new config into an existing run.

    With `overwrite`, an existing run is moved aside (not deleted): it is removed once the new run writes its first
    checkpoint, and moved back if the new run fails before that. Returns that Replacement, or None.
    """
    if os.path.exists(run_dir) and not os.path.isdir(run_dir):
        raise MoeTfError(f"--output-dir {run_dir} is a file, not a directory; choose another --output-dir")
    config_path = os.path.join(run_dir, "config.yaml")
    replacement = None
    if os.path.exists(config_path):
        if overwrite:
            replacement = Replacement(run_dir)
        elif not resume:
            raise MoeTfError(
                f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to replace "
                "it, or choose another --output-dir"
            )
        else:
            previous = read_run_config(run_dir)
            if previous.model != config.model or [t.name for t in previous.tasks] != [t.name for t in config.tasks]:
                raise MoeTfError(f"--resume: the model or tasks in the config differ from {config_path}")
    try:
        os.makedirs(run_dir, exist_ok=True)
    except OSError as e:
        why = e.strerror
    else:
        why = None if os.access(run_dir, os.W_OK) else "Permission denied"
    if why:
        if replacement is not None:
            replacement.roll_back()
        raise MoeTfError(f"cannot create the run directory {run_dir}: {why}")
    return replacement


def resume_command(run_dir: str) -> str:
    """The exact command that continues the run in `run_dir` (its config.yaml is the resolved config)."""
    return (
        f"moe-tf train --config {shlex.quote(os.path.join(run_dir, 'config.yaml'))} "
        f"--output-dir {shlex.quote(run_dir)} --resume"
    )


def _holds_anything(run_dir: str) -> bool:
    """True once a run directory holds a checkpoint or metrics (what a failed start must not delete)."""
    return bool(list_checkpoints(os.path.join(run_dir, "checkpoints"))) or os.path.exists(
        os.path.join(run_dir, "metrics.json")
    )


def evaluate(run_dir: str, split: str = "test", checkpoint: str = "best") -> dict:
    """Restores a finished run's weights and returns exact metrics on `split` ("eval" or "test")."""
    parts, path = restore_components(run_dir, checkpoint)
    return evaluation(parts, path, split)


def evaluation(parts: Components, path: str, split: str) -> dict:
    """Exact metrics of restored components on `split`, with the step and path of the checkpoint they hold."""
    summary = parts.evaluate(split)
    step = int(path.rsplit("-", 1)[-1])
    return {
        "tasks": summary["tasks"],
        "split": split,
        "step": step,
        "loss": summary["loss"],
        "checkpoint": path,
        "gates": summary["gates"],
    }


def export(run_dir: str, output: str | None = None, checkpoint: str = "best") -> str:
    """Rebuilds the model of a finished run, restores its weights and exports it (default: `<run_dir>/export`)."""
    parts, _ = restore_components(run_dir, checkpoint)
    return export_model(parts.model, parts.config, parts.data, output or os.path.join(run_dir, "export"))


def export_tflite(
    run_dir: str,
    output: str | None = None,
    checkpoint: str = "best",
    quantize: str = "none",
    echo: Callable[[str], None] = print,
) -> tuple[str, dict]:
    """A TFLite model of a finished run (default directory `<run_dir>/tflite`), compared with its SavedModel on the
    test split (moe_tf.export.tflite). Returns (the directory, this mode's compression.json entry)."""
    from moe_tf.export.tflite import QUANTIZE_MODES
    from moe_tf.export.tflite import export_tflite as convert_run

    if quantize not in QUANTIZE_MODES:  # before the run is rebuilt
        raise ConfigError(f"--quantize {quantize}: expected one of {', '.join(QUANTIZE_MODES)}")
    parts, _ = restore_components(run_dir, checkpoint)
    out_dir = output or os.path.join(run_dir, "tflite")
    return out_dir, convert_run(parts, out_dir, quantize, echo)
