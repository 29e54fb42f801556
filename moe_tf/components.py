"""The composition root: one place that turns a config into data, model, weighting and optimizer, and a training
run's wiring around them.

Training, evaluation, export, the tests and the benchmarks all build through `build_components` (or
`restore_components` for a finished run), so there is one build sequence: strategy → data → model → weighting →
optimizer → trainer or evaluator. `build_run` adds what a training run connects to the loop: the stop request, the
profile window, early stopping, checkpoints, TensorBoard, the gate report and the hooks that call them
(moe_tf.run reads as the phases of a run over it).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from moe_tf.config.schema import ExperimentConfig
from moe_tf.data import TaskData, build_task_data
from moe_tf.data.streamed import StoredPass, read_stored_pass
from moe_tf.errors import MoeTfError
from moe_tf.logging.progress import Progress
from moe_tf.logging.tensorboard import TensorBoardLogger
from moe_tf.models import build_model
from moe_tf.models.multitask import MultiTaskModel
from moe_tf.models.normalization import norm_parameters
from moe_tf.run_dir import Replacement, read_run_config
from moe_tf.run_hooks import GateReport, RunHooks
from moe_tf.training.averaging import WeightAverage
from moe_tf.training.checkpoints import Checkpointer, find_checkpoint, read_vocabularies, restore_for_inference
from moe_tf.training.distillation import Distillation
from moe_tf.training.early_stopping import EarlyStopping
from moe_tf.training.evaluator import Evaluator
from moe_tf.training.mixup import build_mixup
from moe_tf.training.optimizer import build_optimizer
from moe_tf.training.profiling import ProfileWindow
from moe_tf.training.replicas import resolve_jit_compile
from moe_tf.training.signals import StopRequest
from moe_tf.training.strategy import worker_count
from moe_tf.training.trainer import Trainer, TrainerParts, total_steps
from moe_tf.training.weightings import build_weighting
from moe_tf.training.weightings.base import Weighting

# Called after each evaluation as observer(step, eval summary); returning true stops training there.
Observer = Callable[[int, dict], bool]


@dataclass
class Components:
    """What a run is made of. `optimizer` is None when built for inference."""

    config: ExperimentConfig
    strategy: tf.distribute.Strategy
    data: TaskData
    model: MultiTaskModel
    weighting: Weighting
    optimizer: keras.optimizers.Optimizer | None
    lr_scale: keras.Variable | None = None  # the learning-rate factor training.nonfinite.action: reduce_lr lowers
    distillation: Distillation | None = None  # with a teacher (training.distillation.teacher)
    average: WeightAverage | None = None  # training.ema_momentum, training only

    def trainer(self, stop_request: StopRequest | None = None, profile: ProfileWindow | None = None) -> Trainer:
        """Args: stop_request: graceful stop on SIGINT/SIGTERM; profile: the `training.profile` window."""
        if self.optimizer is None:
            raise ValueError("these components were built for inference (training=False)")
        return Trainer(
            TrainerParts(
                self.model,
                self.weighting,
                self.optimizer,
                self.strategy,
                self.data,
                lr_scale=self.lr_scale,
                distillation=self.distillation,
                average=self.average,
                mixup=build_mixup(self.config, self.data),
            ),
            self.config.training,
            self.config.logging.gradient_stats_every,
            stop_request=stop_request,
            profile=profile,
        )

    def evaluator(self) -> Evaluator:
        jit = resolve_jit_compile(self.config.training.jit_compile, self.strategy)
        return Evaluator(self.model, self.strategy, self.data.tasks, self.data.features, jit)

    def evaluate(self, role: str) -> dict:
        """Exact metrics on a split; the loss weighs tasks by the weighting's current weights."""
        dataset = self.data.eval_dataset(role, self.config.training.batch_size)
        return self.evaluator().evaluate(dataset, self.weighting.weights())


def build_components(
    config: ExperimentConfig,
    strategy: tf.distribute.Strategy | None = None,
    *,
    training: bool = True,
    data: TaskData | None = None,
    initial_weights: list | None = None,
    vocabularies: dict[str, list[str]] | None = None,
    stored: StoredPass | None = None,
    warn: Callable[[str], None] = print,
) -> Components:
    """Builds every component of `config` under `strategy` (default: the current one).

    Args:
        training: also build the optimizer (for the total step count the config implies).
        data: an already loaded TaskData of the same config, to skip reading the sources again.
        initial_weights: model weights to start from (e.g. to compare strategies from one initialisation).
        vocabularies: {feature: tokens} of text and categorical inputs from a checkpoint (a resumed, restored or
            --init-from run), instead of building them from the training split.
        stored: the run directory's record of the streamed sources' pass over their files (a resumed or restored
            run), read instead of passing again.
        warn: prints warnings (a categorical vocabulary cut at max_tokens) and a streamed source's pass.
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.mixed_precision.set_global_policy(config.training.mixed_precision)
    data = data or build_task_data(config, stored, warn)
    cfg = config.training
    if training:
        data.configure_sharding(worker_count(strategy), cfg.batch_size)
    optimizer = lr_scale = average = None
    with strategy.scope():
        model = build_model(config.model, data, vocabularies, warn)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        weighting = build_weighting(
            cfg.weighting, data.tasks, model, config.experiment.seed, data.steps_per_epoch(cfg.batch_size)
        )
        if training:
            # The non-finite guard's learning-rate factor (lowered by `reduce_lr` only). It exists under every
            # action, so a run resumed under another action restores the same checkpoint.
            lr_scale = keras.Variable(
                1.0, dtype="float32", trainable=False, name="nonfinite_lr_scale", aggregation="only_first_replica"
            )
            optimizer = build_optimizer(
                cfg.optimizer, total_steps(cfg, data), cfg.mixed_precision, lr_scale, norm_parameters(model)
            )
            optimizer.build(list(model.trainable_variables) + list(weighting.trainable_variables))
    if training and cfg.ema_momentum is not None:
        average = WeightAverage(model, strategy, cfg.ema_momentum)
    data.attach_vectorizers(model.input_lookups())
    distillation = build_distillation(config, data, strategy) if training else None
    return Components(config, strategy, data, model, weighting, optimizer, lr_scale, distillation, average)


def build_distillation(
    config: ExperimentConfig, data: TaskData, strategy: tf.distribute.Strategy
) -> Distillation | None:
    """The Distillation of `config.training.distillation` (None without a teacher): the teacher run rebuilt from
    its config.yaml under `strategy`, its best weights restored."""
    cfg = config.training.distillation
    if not cfg.teacher:
        return None
    policy = keras.mixed_precision.global_policy()
    try:
        teacher = build_components(
            read_run_config(cfg.teacher),
            strategy,
            training=False,
            vocabularies=checkpoint_vocabularies(cfg.teacher),
            stored=read_stored_pass(cfg.teacher, on_change="keep"),  # its streamed sources: no second pass
        )
        restore_for_inference(cfg.teacher, teacher.model)
    except MoeTfError as e:
        raise MoeTfError(f"--distill-from {cfg.teacher}: {e}") from None
    finally:
        keras.mixed_precision.set_global_policy(policy)  # the teacher's build set its own
    return Distillation(teacher.model, teacher.data, data.tasks, data.features, cfg)


def restore_components(run_dir: str, checkpoint: str = "best") -> tuple[Components, str]:
    """Rebuilds a finished run from its config.yaml and loads its weights.

    Args:
        checkpoint: "best" (if early stopping kept one, else latest) or "latest".

    Returns:
        (components built for inference, checkpoint path).
    """
    config = read_run_config(run_dir)
    vocabularies = checkpoint_vocabularies(run_dir, prefer_best=checkpoint == "best")
    stored = read_stored_pass(run_dir, on_change="keep")  # the training statistics, whatever the files hold now
    components = build_components(config, training=False, vocabularies=vocabularies, stored=stored)
    path = restore_for_inference(run_dir, components.model, prefer_best=checkpoint == "best")
    return components, path


def checkpoint_vocabularies(run_dir: str, prefer_best: bool = True) -> dict[str, list[str]]:
    """The vocabularies of the checkpoint `restore_for_inference` reads ({} without a checkpoint: restoring then
    says so)."""
    path = find_checkpoint(run_dir, prefer_best)
    return read_vocabularies(path) if path is not None else {}


@dataclass
class Run:
    """A training run: its components and what connects the loop to the run directory (built by `build_run`).
    Closing it (the `with` block's end) closes the event files and the checkpoint writer."""

    config: ExperimentConfig
    run_dir: str
    chief: bool
    resuming: bool  # resumed from a checkpoint of its own (so --init-from does not apply)
    parts: Components
    progress: Progress
    stop_request: StopRequest
    trainer: Trainer
    early_stopping: EarlyStopping
    checkpointer: Checkpointer
    gate_report: GateReport
    tensorboard: TensorBoardLogger
    hooks: RunHooks

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc: object) -> None:
        self.tensorboard.close()
        self.checkpointer.close()


def build_run(
    config: ExperimentConfig,
    run_dir: str,
    parts: Components,
    progress: Progress,
    *,
    chief: bool,
    resuming: bool,
    replacement: Replacement | None = None,
    observer: Observer | None = None,
) -> Run:
    """Wires a training run's components (from `build_components`) to progress output, TensorBoard, the gate
    report, early stopping and checkpoints. Writes nothing yet.

    Args:
        resuming: the run continues from a checkpoint of its own (its text vocabularies come from there).
        observer: called as observer(step, eval_summary) after each evaluation; true stops training there.
    """
    stop_request = StopRequest(progress.print)
    trace_dir = os.path.join(run_dir, "logs", "train") if chief and config.logging.tensorboard else None
    trainer = parts.trainer(stop_request, ProfileWindow(config.training.profile, trace_dir, progress.print))
    early = EarlyStopping(config.training.early_stopping)
    weighting_state = parts.weighting.state()
    checkpointer = Checkpointer(
        run_dir,
        chief,
        config.training.keep_checkpoints,
        model=parts.model,
        optimizer=parts.optimizer,
        early_stopping_best=early.best,
        early_stopping_bad_evals=early.bad_evals,
        nonfinite=trainer.guard.state(),
        step_stat_sums=trainer.sums,
        **({"weighting": weighting_state} if weighting_state else {}),
        **(parts.average.state() if parts.average is not None else {}),
    )
    gate_report = GateReport(run_dir, parts.model, config, progress, chief)
    tensorboard = TensorBoardLogger(
        os.path.join(run_dir, "logs"),
        chief and config.logging.tensorboard,
        config.logging.gate_heatmap,
        gate_report.columns,
    )
    hooks = RunHooks(progress, tensorboard, early, checkpointer, gate_report, replacement, observer)
    return Run(
        config,
        run_dir,
        chief,
        resuming,
        parts,
        progress,
        stop_request,
        trainer,
        early,
        checkpointer,
        gate_report,
        tensorboard,
        hooks,
    )
