"""Whole runs, for the CLI, the notebooks and the tests: `train` (with logs, checkpoints, metrics.json and the
export), `evaluate` and `export` of a finished run. Everything is built through moe_tf.components."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import time

import keras
import tensorflow as tf

from moe_tf.components import build_components, restore_components
from moe_tf.config.loader import to_yaml
from moe_tf.errors import ConfigError, Interrupted, MoeTfError, error_line
from moe_tf.export.saved_model import export_model
from moe_tf.logging.gates import DeadExperts, gates_png
from moe_tf.logging.progress import Progress, summary_table
from moe_tf.logging.tensorboard import TensorBoardLogger, purge_after
from moe_tf.models import count_params
from moe_tf.run_dir import Replacement, atomic_write, read_run_config
from moe_tf.training import determinism
from moe_tf.training.averaging import short_run_warning
from moe_tf.training.checkpoints import Checkpointer, checkpoint_step, list_checkpoints
from moe_tf.training.distillation import distillation_report, report_lines
from moe_tf.training.early_stopping import EarlyStopping
from moe_tf.training.init_from import checkpoint_of, describe
from moe_tf.training.init_from import init_from as initialise_from
from moe_tf.training.profiling import ProfileWindow
from moe_tf.training.signals import StopRequest
from moe_tf.training.strategy import build_strategy, is_chief
from moe_tf.training.trainer import Stopped, TrainerHooks, total_steps

# What a lost or stopped peer worker looks like to the survivors' collectives.
PEER_FAILURES = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                 tf.errors.AbortedError)


class RunHooks(TrainerHooks):
    """Connects the loop to progress output, TensorBoard, gate telemetry, early stopping and checkpoints."""

    def __init__(self, progress, tensorboard, early_stopping, checkpointer, gate_report, replacement=None,
                 observer=None):
        self.progress = progress
        self.tensorboard = tensorboard
        self.early_stopping = early_stopping
        self.checkpointer = checkpointer
        self.gate_report = gate_report
        self.replacement = replacement
        self.observer = observer
        self._improved = False
        self.last_eval = self.best_eval = None  # (step, summary)

    def on_epoch_start(self, epoch, num_epochs, steps_per_epoch, offset):
        self.progress.epoch_start(epoch, num_epochs, steps_per_epoch, offset)

    def on_train_log(self, step, summary):
        self.progress.train(step, summary)
        self.tensorboard.train(step, summary)

    def on_eval(self, step, summary) -> bool:
        self.progress.eval(step, summary)
        self.tensorboard.eval(step, summary, dead_experts=self.gate_report.update(step, summary))
        self._improved, stop = self.early_stopping.update(summary)
        self.last_eval = (step, summary)
        if self._improved:
            self.best_eval = self.last_eval
        if stop:
            self.progress.print(f"early stopping at step {step}: {self.early_stopping.monitor} has not improved "
                                f"for {self.early_stopping.config.patience} evaluations "
                                f"(best {self.early_stopping.best_value:.4f})")
        if self.observer is not None and self.observer(step, summary):
            return True
        return stop

    def on_checkpoint(self, step):
        self.checkpointer.save(step, best=self._improved)
        self._improved = False
        if self.replacement is not None and self.replacement.pending:
            self.progress.print(self.replacement.commit())  # the new run has started: the old one goes

    def on_task_gradients(self, step, summary):
        self.tensorboard.task_gradients(step, summary)

    def on_nonfinite(self, step, report):
        lr = "" if report["lr_scale"] is None else f"; learning rate factor now {report['lr_scale']:.3g}"
        self.progress.print(f"warning: {report['count']} non-finite step(s) skipped by step {step} (first at step "
                            f"{report['step']}: {report['what']}); {report['total']} in this run{lr}")

    def on_step_ops(self, op_types):
        self.progress.print(determinism.describe(op_types, len(tf.config.list_logical_devices("GPU"))))

    def on_stop(self, step, reason):
        self.on_checkpoint(step)

    def last_checkpoint(self):
        return self.checkpointer.latest.latest_checkpoint


class GateReport:
    """Each evaluation: `gates.png` in the run directory (chief only) and the dead-expert check, warned once per
    expert. Does nothing for architectures without gates."""

    def __init__(self, run_dir, model, config, progress, chief):
        self.path = os.path.join(run_dir, "gates.png")
        names = model.mixture.expert_names()
        self.columns = next(iter(names.values()), [])
        self.columns = [c.split("_", 1)[1] if c.startswith("level") else c for c in self.columns]
        self.dead = DeadExperts(names, config.logging.dead_expert_threshold, config.logging.dead_expert_patience)
        self.progress = progress
        self.chief = chief

    def update(self, step, summary) -> int | None:
        """Writes the figure and returns how many experts are dead (None without gates)."""
        if not summary["gates"]:
            return None
        self.write(summary, f"mean gate weight per expert (eval, step {step})")
        count, new = self.dead.update(summary["gates"])
        for name in new:
            self.progress.print(f"warning: expert {name} is dead: its load stayed below "
                                f"{self.dead.threshold} under every gate for {self.dead.patience} evaluations")
        return count

    def write(self, summary, title) -> None:
        if self.chief and summary["gates"]:
            atomic_write(self.path, gates_png(summary["gates"], self.columns, title))


def prepare_run_dir(config, run_dir: str, resume: bool, overwrite: bool = False) -> Replacement | None:
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
            raise MoeTfError(f"{run_dir} already holds a run; pass --resume to continue it, --overwrite to replace "
                             "it, or choose another --output-dir")
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
    return (f"moe-tf train --config {shlex.quote(os.path.join(run_dir, 'config.yaml'))} "
            f"--output-dir {shlex.quote(run_dir)} --resume")


def train(config, run_dir: str, resume: bool = False, export: bool = True, init_from: str | None = None,
          overwrite: bool = False, observer=None) -> dict:
    """Trains, evaluates on the test split, writes metrics.json and (on the chief) the export. Returns metrics:
    the test split's, and under "eval" the evaluation of the final weights (the best one's, if early stopping
    restored it).

    Args:
        init_from: a trained run directory whose variables (and text vocabularies) start this run, matched by name;
            ignored when resuming from a checkpoint of this run.
        overwrite: replace an existing run in `run_dir` (only once this run has written its first checkpoint).
        observer: called as observer(step, eval_summary) after each evaluation; returning True stops training there
            (as early stopping does: the test split is still evaluated and metrics.json written). Search uses it
            to prune a trial.

    Raises:
        Interrupted: SIGINT/SIGTERM stopped training after a checkpoint (exit code 3; the message says how to resume).
        MoeTfError: bad input, a non-finite stop, a lost multi-worker peer; nothing already written is damaged.
    """
    if overwrite and resume:
        raise ConfigError("--overwrite and --resume exclude each other: --resume continues the run, --overwrite "
                         "replaces it")
    strategy = build_strategy(config.training)  # first: multi-worker must start before any other op
    chief = is_chief(strategy)
    created = chief and not os.path.exists(run_dir)
    replacement = prepare_run_dir(config, run_dir, resume, overwrite) if chief else None
    try:
        return _train(config, run_dir, strategy, chief, resume, export, init_from, replacement, observer)
    except BaseException as e:
        if replacement is not None and replacement.pending:
            note = replacement.roll_back()
            if isinstance(e, MoeTfError):
                raise type(e)(f"{e}\n{note}") from None
        elif created and not _holds_anything(run_dir):
            shutil.rmtree(run_dir, ignore_errors=True)  # a run that never started leaves no directory behind
        raise


def _holds_anything(run_dir: str) -> bool:
    """True once a run directory holds a checkpoint or metrics (what a failed start must not delete)."""
    return bool(list_checkpoints(os.path.join(run_dir, "checkpoints"))) or \
        os.path.exists(os.path.join(run_dir, "metrics.json"))


def _train(config, run_dir, strategy, chief, resume, export, init_from, replacement, observer) -> dict:
    keras.utils.set_random_seed(config.experiment.seed)
    progress = Progress(config.logging.progress, enabled=chief)
    progress.print(f"strategy: {config.training.strategy} ({type(strategy).__name__.lstrip('_')}) with "
                   f"{strategy.num_replicas_in_sync} replica(s); "
                   f"global batch {config.training.batch_size}")
    if replacement is not None:
        progress.print(replacement.describe())
    if config.training.deterministic:
        determinism.enable()
    if init_from:
        checkpoint_of(init_from)  # a wrong --init-from fails before any data is read
    # Resuming: the checkpoint sets the text vocabularies, so they are not rebuilt from (possibly changed) data.
    resuming = resume and bool(list_checkpoints(os.path.join(run_dir, "checkpoints")))
    parts = build_components(config, strategy, adapt_text=not resuming)
    data, model, optimizer = parts.data, parts.model, parts.optimizer
    for name, source in data.sources.items():
        sizes = ", ".join(f"{k} {v}" for k, v in source.sizes.items())
        inputs = ", ".join(f"{f} {s.modality} {s.dtype}{list(s.shape)}" for f, s in source.features.items())
        progress.print(f"data {name!r}: {sizes} examples; inputs: {inputs}")
    if data.multi_source:
        p = data.source_probabilities()
        progress.print(f"sampling ({config.data.sampling.type}): "
                       + ", ".join(f"{name} {q:.3f}" for name, q in zip(data.sources, p)))
    progress.print("tasks: " + ", ".join(f"{t.name} ({t.kind} on {t.source}, {t.num_classes} classes)"
                                         for t in data.tasks))
    gates = f" with {config.model.gate.type} gates" if model.task_gates() else ""
    experts = " on the raw inputs" if gates and config.model.experts.input == "raw" else ""
    progress.print(f"model: {config.model.architecture.type}{gates}{experts}, {count_params(model):,} trainable "
                   f"parameters; weighting: {config.training.weighting.type}"
                   + (f"; evaluated on a moving average of the weights (ema_momentum {config.training.ema_momentum})"
                      if parts.average is not None else ""))
    if parts.distillation is not None:
        progress.print(parts.distillation.describe())
    batch = config.training.batch_size
    data.require_split("test")  # no test split fails now, not after training
    stop_request = StopRequest(progress.print)
    profile, steps = config.training.profile, total_steps(config.training, data)
    if profile is not None and profile.start_step >= steps:
        raise ConfigError(f"training.profile.start_step: {profile.start_step} is not a step of this run (it trains "
                          f"steps 0–{steps - 1})")
    if parts.average is not None:
        warning = short_run_warning(config.training.ema_momentum, steps)
        if warning:
            progress.print(warning)
    trace_dir = os.path.join(run_dir, "logs", "train") if chief and config.logging.tensorboard else None
    trainer = parts.trainer(stop_request, ProfileWindow(profile, trace_dir, progress.print))
    early = EarlyStopping(config.training.early_stopping)
    weighting_state = parts.weighting.state()
    checkpointer = Checkpointer(run_dir, chief, config.training.keep_checkpoints, model=model, optimizer=optimizer,
                                early_stopping_best=early.best, early_stopping_bad_evals=early.bad_evals,
                                nonfinite=trainer.guard.state(), step_stat_sums=trainer.sums,
                                **({"weighting": weighting_state} if weighting_state else {}),
                                **(parts.average.state() if parts.average is not None else {}))
    restored = None
    if resume:
        restored = checkpointer.restore_latest(warn=progress.print)
        trainer.guard.restored()
        progress.print(f"resumed from step {restored}" if restored is not None else "no checkpoint: starting fresh")
        log_dir = os.path.join(run_dir, "logs")
        if chief and os.path.isdir(log_dir):
            purged = purge_after(log_dir, -1 if restored is None else restored)
            if purged:
                progress.print(f"TensorBoard: removed {purged} event(s) logged after step {restored or 0} by the "
                               "interrupted run (they are logged again)")
    if init_from and not resuming:
        report = initialise_from(init_from, model)
        for line in describe(report):
            progress.print(line)
        if chief:
            atomic_write(os.path.join(run_dir, "init_from.json"), json.dumps(report, indent=2))
    elif init_from:
        progress.print(f"--init-from {init_from} ignored: resuming from this run's own checkpoint")
    if chief:
        atomic_write(os.path.join(run_dir, "config.yaml"), to_yaml(config))
    gate_report = GateReport(run_dir, model, config, progress, chief)
    tensorboard = TensorBoardLogger(os.path.join(run_dir, "logs"), chief and config.logging.tensorboard,
                                    config.logging.gate_heatmap, gate_report.columns)
    if restored is None:
        tensorboard.config(to_yaml(config))  # a resumed run's config text is already in its logs at step 0
        tensorboard.hparams(config.model_dump(), os.path.basename(os.path.abspath(run_dir)))
    hooks = RunHooks(progress, tensorboard, early, checkpointer, gate_report, replacement, observer)
    try:
        started = time.perf_counter()
        start_step = int(optimizer.iterations.numpy())
        try:
            with stop_request:
                step = trainer.fit(hooks, data.eval_dataset("eval", batch) if data.has_split("eval") else None)
        except Stopped as stopped:
            where = checkpointer.latest.latest_checkpoint if chief else "the chief's run directory"
            workers = " on every worker (same TF_CONFIG)" if config.training.strategy == "multi_worker" else ""
            raise Interrupted(f"{stopped.reason} at step {stopped.step}: checkpoint written ({where}). Resume"
                              f"{workers} with:\n  {resume_command(run_dir)}") from None
        seconds = time.perf_counter() - started
        final_eval = hooks.last_eval
        best = config.training.early_stopping.monitor and config.training.early_stopping.restore_best and \
            checkpointer.restore_best()
        if best:
            progress.print(f"restored the best checkpoint ({config.training.early_stopping.monitor} = "
                           f"{early.best_value:.4f})")
        if parts.average is not None:
            parts.average.install()  # what training evaluated: the test split and the export use the averages
            progress.print(f"weights: the moving average (training.ema_momentum {config.training.ema_momentum})")
        if best:  # the best evaluation was before a resume: evaluate the restored weights again
            final_eval = hooks.best_eval or (checkpoint_step(checkpointer.best.latest_checkpoint), trainer.evaluate(
                data.eval_dataset("eval", batch)))
        test = trainer.evaluate(data.eval_dataset("test", batch))
        tensorboard.eval(step, test, split="test")
        gate_report.write(test, f"mean gate weight per expert (test split, step {step})")
    except tf.errors.UnimplementedError as e:
        if not config.training.deterministic:
            raise
        raise MoeTfError(f"training.deterministic: an op has no deterministic implementation on this device: "
                         f"{error_line(e)}; set training.deterministic: false, or move that op's model part to "
                         "another device") from None
    except PEER_FAILURES as e:
        if config.training.strategy != "multi_worker":
            raise
        raise MoeTfError(f"multi_worker: lost contact with another worker ({type(e).__name__}: {error_line(e)}); "
                         f"the last checkpoint is {checkpointer.latest.latest_checkpoint if chief else 'kept'}. "
                         f"Restart every worker with:\n  {resume_command(run_dir)}") from None
    finally:
        tensorboard.close()
        checkpointer.close()
    metrics = {"tasks": test["tasks"], "split": "test", "step": step, "loss": test["loss"],
               "examples_per_sec": (step - start_step) * batch / max(seconds, 1e-9),
               "train_seconds": seconds, "nonfinite_steps": int(trainer.guard.total.numpy())}
    if final_eval is not None:
        metrics["eval"] = {"step": final_eval[0], "loss": final_eval[1]["loss"], "tasks": final_eval[1]["tasks"]}
    progress.print(summary_table(test, "test"))
    progress.print(f"{step - start_step} steps in {seconds:.1f} s ({metrics['examples_per_sec']:,.0f} examples/s)")
    if chief:
        atomic_write(os.path.join(run_dir, "metrics.json"), json.dumps(metrics, indent=2))
        if export:
            path = export_model(model, config, data, os.path.join(run_dir, "export"))
            progress.print(f"exported SavedModel: {path}")
        if parts.distillation is not None:
            report = distillation_report(parts.distillation, model, metrics, run_dir)
            atomic_write(os.path.join(run_dir, "distillation.json"), json.dumps(report, indent=2))
            for line in report_lines(report):
                progress.print(line)
        progress.print(f"TensorBoard: tensorboard --logdir {os.path.dirname(os.path.abspath(run_dir))}")
    return metrics


def evaluate(run_dir: str, split: str = "test", checkpoint: str = "best") -> dict:
    """Restores a finished run's weights and returns exact metrics on `split` ("eval" or "test")."""
    parts, path = restore_components(run_dir, checkpoint)
    summary = parts.evaluate(split)
    step = int(path.rsplit("-", 1)[-1])
    return {"tasks": summary["tasks"], "split": split, "step": step, "loss": summary["loss"], "checkpoint": path,
            "gates": summary["gates"]}


def export(run_dir: str, output: str | None = None, checkpoint: str = "best") -> str:
    """Rebuilds the model of a finished run, restores its weights and exports it (default: `<run_dir>/export`)."""
    parts, _ = restore_components(run_dir, checkpoint)
    return export_model(parts.model, parts.config, parts.data, output or os.path.join(run_dir, "export"))


def export_tflite(run_dir: str, output: str | None = None, checkpoint: str = "best", quantize: str = "none",
                  echo=print) -> tuple[str, dict]:
    """A TFLite model of a finished run (default directory `<run_dir>/tflite`), compared with its SavedModel on the
    test split (moe_tf.export.tflite). Returns (the directory, this mode's compression.json entry)."""
    from moe_tf.export.tflite import QUANTIZE_MODES
    from moe_tf.export.tflite import export_tflite as convert_run

    if quantize not in QUANTIZE_MODES:  # before the run is rebuilt
        raise ConfigError(f"--quantize {quantize}: expected one of {', '.join(QUANTIZE_MODES)}")
    parts, _ = restore_components(run_dir, checkpoint)
    out_dir = output or os.path.join(run_dir, "tflite")
    return out_dir, convert_run(parts, out_dir, quantize, echo)
