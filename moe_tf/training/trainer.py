"""The distributed training loop: one loop for every strategy (default, one_device, mirrored, multi_worker, tpu).

A step runs `strategy.run` inside a `tf.function`. Each replica's task loss is Σ w·loss over its examples, with the
per-example weights of the input pipeline (1 / labelled examples of the task in the *global* batch), so summed
across replicas it is the task's mean over its labelled examples in the global batch. The weighting turns the task
losses into gradient pieces, the trainer sums them across replicas once, the weighting combines them, and the
optimizer applies the result without reducing again.

The non-finite guard (moe_tf.training.nonfinite) checks the global losses and gradients inside the step and applies
the update only when they are finite. A graceful stop (SIGINT/SIGTERM, moe_tf.training.signals) or the guard's stop
ends a multi-step graph call after the current step.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, NamedTuple

import keras
import numpy as np
import tensorflow as tf

from moe_tf.config.schema import TrainingConfig
from moe_tf.data import TaskData
from moe_tf.models.distributed_tables import check_engine_tables
from moe_tf.models.multitask import MultiTaskModel
from moe_tf.models.normalization import moving_statistics, synchronized_norm
from moe_tf.training.averaging import WeightAverage
from moe_tf.training.determinism import graph_op_types
from moe_tf.training.distillation import Distillation
from moe_tf.training.evaluator import Evaluator
from moe_tf.training.hooks import Stopped, TrainerHooks
from moe_tf.training.mixup import MixDraw, Mixup
from moe_tf.training.nonfinite import NonfiniteGuard, apply_if
from moe_tf.training.objectives import aux_total, batch_stats, summarize, task_presence
from moe_tf.training.part_rates import PartRates
from moe_tf.training.profiling import ProfileWindow
from moe_tf.training.replicas import SUM, all_reduce, dense, resolve_jit_compile, run_replicas, single_device, xla
from moe_tf.training.signals import StopRequest
from moe_tf.training.vectors import flatten, unflatten
from moe_tf.training.weightings.base import StepContext, VariableGroups, Weighting, all_finite, gradient


@dataclass
class TrainerParts:
    """What a Trainer trains (built by moe_tf.components under the strategy's scope).

    model: a built MultiTaskModel. weighting: owns the backward pass (moe_tf.training.weightings). optimizer: a
    Keras 3 optimizer from `build_optimizer` (LossScaleOptimizer under mixed_float16); it applies gradients already
    summed across replicas. data: the TaskData (tasks, model inputs, pipelines). lr_scale: the learning-rate factor
    `training.nonfinite.action: reduce_lr` lowers. distillation: mixes a teacher's soft targets into the shared
    tasks' losses. average: the `training.ema_momentum` weight average, updated after every applied step;
    evaluations during training use it. mixup: mixes each training batch (`data.augmentation.mixup`).
    """

    model: MultiTaskModel
    weighting: Weighting
    optimizer: keras.optimizers.Optimizer
    strategy: tf.distribute.Strategy
    data: TaskData
    lr_scale: keras.Variable | None = None
    distillation: Distillation | None = None
    average: WeightAverage | None = None
    mixup: Mixup | None = None


class PhaseOne(NamedTuple):
    """One replica's forward and backward pass: the weighting's gradient pieces, the step's statistics (packed),
    the task weights [tasks] it reports, and the losses the guard checks ([tasks + 1]: each task's, then the rest)."""

    pieces: object
    stats: tf.Tensor
    weights: tf.Tensor
    losses: tf.Tensor


class StepResult(NamedTuple):
    """One replica's step: `stats` (packed), `weights` [tasks], `losses` (global, as PhaseOne's), `bad` (the guard
    rejected the step: non-finite losses or gradients) and `applied` (the optimizer updated the variables; under
    mixed_float16 a step can be neither bad nor applied, when the loss scale overflowed)."""

    stats: tf.Tensor
    weights: tf.Tensor
    losses: tf.Tensor
    bad: tf.Tensor
    applied: tf.Tensor


class Trainer:
    """Trains the parts' model on its tasks with its weighting and optimizer under its strategy.

    Args:
        parts: what is trained (TrainerParts).
        config: the `training` config.
        gradient_stats_every: measure the tasks' gradient norms and cosines every this many steps (0: never;
            `logging.gradient_stats_every`).
        stop_request: polled between graph calls; its `reason` (e.g. "SIGTERM") ends `fit` after a checkpoint
            (moe_tf.training.signals.StopRequest). Outside multi-worker it also sets `stop_flag`, which ends a
            multi-step graph call after the current step.
        profile: a ProfileWindow tracing `training.profile`'s steps (or None).
    """

    def __init__(
        self,
        parts: TrainerParts,
        config: TrainingConfig,
        gradient_stats_every: int = 0,
        stop_request: StopRequest | None = None,
        profile: ProfileWindow | None = None,
    ):
        self.model, self.weighting, self.optimizer = parts.model, parts.weighting, parts.optimizer
        self.strategy, self.data, self.tasks = parts.strategy, parts.data, parts.data.tasks
        self.distillation, self.average, self.mixup = parts.distillation, parts.average, parts.mixup
        self.config = config
        self.global_batch_size = config.batch_size
        shared, own = self.model.variable_groups()
        self.groups = VariableGroups(shared, own, list(self.weighting.trainable_variables))
        self.gradient_stats_every = gradient_stats_every if shared else 0
        self.variables = self.groups.all
        self.jit_compile = resolve_jit_compile(config.jit_compile, self.strategy)
        self.evaluator = Evaluator(self.model, self.strategy, self.tasks, self.data.features, self.jit_compile)
        # A step's statistics are packed into one float32 vector: one cross-replica reduction per step and one
        # running-sum variable that steps add to without waiting on the host; it is read (and reset) only when a
        # log line is due.
        self._template = {
            "stats": self.evaluator.template,
            "loss": tf.zeros(()),
            "steps": tf.zeros(()),
            "nonfinite": tf.zeros(()),
        }
        self.sums = tf.Variable(flatten(self._template), trainable=False, name="step_stat_sums")
        self._one_step = flatten({**self._template, "steps": tf.ones(())})  # counts a step, added once
        self._skipped_step = flatten({**self._template, "steps": tf.ones(()), "nonfinite": tf.ones(())})
        self.guard = NonfiniteGuard(config.nonfinite, self.weighting.names, parts.lr_scale)
        self.mixed_float16 = getattr(self.optimizer, "dynamic_scale", None) is not None
        check_engine_tables(self.model, self.weighting, self.gradient_stats_every, self.mixed_float16)
        self.multi_worker = isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
        # Set from a signal-watching thread (never under multi-worker, where workers must agree on where to stop);
        # read by the multi-step loop between steps.
        self.stop_flag = tf.Variable(False, trainable=False, name="stop_requested")
        self.stop_request = stop_request
        self.profile = profile or ProfileWindow(None, None)
        if stop_request is not None and not self.multi_worker:
            stop_request.on_request = lambda: self.stop_flag.assign(True)
        # No AutoGraph: the loop is an explicit tf.while_loop and the step's code branches with tf.cond, so nothing
        # needs converting; converting the whole step's call tree was half of its tracing time.
        self._any_worker_stops = tf.function(self._reduce_stop_votes, autograph=False)
        self.train_chunk = tf.function(self._steps, autograph=False)
        self.train_step_with_gradient_stats = tf.function(self._step_with_gradient_stats, autograph=False)
        # XLA: on one device the whole step compiles, optimizer update included; with several replicas the
        # gradient pieces are all-reduced between the two phases (a cross-replica call XLA cannot hold), so the
        # forward and backward pass compile.
        # A weighting that sums values across replicas inside phase 1 (FAMO, MGDA-UB) keeps phase 1 out of XLA then.
        # So does a batch norm that normalises over the global batch (a cross-replica sum in every such layer).
        whole_step = self.jit_compile and single_device(self.strategy)
        phase_one = self.jit_compile and not whole_step and not self.weighting.reduces_in_backward
        phase_one = phase_one and not synchronized_norm(self.model)
        # Batch-norm moving statistics: each replica updates them on its own sub-batch; averaged in the step's
        # all-reduce, and put back as they were when the step is not applied (non-finite).
        self.moving = moving_statistics(self.model)
        self.part_rates = PartRates(config.optimizer.parts, self.model, self.strategy)
        self.compiled = SimpleNamespace(
            forward_backward=xla(self.forward_backward, phase_one), replica_step=xla(self.replica_step, whole_step)
        )

    def read_and_reset_sums(self) -> dict:
        """The statistics summed since the last call (numpy, structured like one step's), and zeroes the sums."""
        values = unflatten(self.sums.numpy(), self._template)
        self.sums.assign(tf.zeros_like(self.sums))
        return values

    def evaluate(self, dataset: tf.data.Dataset) -> dict:
        """Exact metrics over a whole dataset; the loss weighs tasks by the weighting's current weights."""
        return self.evaluator.evaluate(dataset, self.weighting.weights())

    # ---- the step (graph) -------------------------------------------------------------------------------------

    def replica_step(self, inputs: dict, labels: dict, loss_weights: dict, mix: MixDraw | None = None) -> StepResult:
        """One replica's step: phase 1 (forward and the weighting's backward pass), the step's one cross-replica
        sum, phase 2 (the weighting combines the global pieces) and the guarded update. `mix`: the step's mixup."""
        kept = [tf.identity(v.value) for v in self.moving]  # before the forward pass moves them
        phase = self.compiled.forward_backward(inputs, labels, self._global_weights(loss_weights), mix)
        ctx = self._context()
        moving = [tf.identity(v.value) for v in self.moving]  # this replica's, after its forward pass
        # The one reduction of the step: gradients, losses and the replicas' batch-norm moving statistics.
        pieces, losses, moving = ctx.all_reduce((phase.pieces, phase.losses, moving))
        losses_finite = tf.reduce_all(tf.math.is_finite(losses))
        ctx.finite = losses_finite & all_finite(pieces)
        for variable, total, old in zip(self.moving, moving, kept):  # this replica's copy; every replica alike
            variable.assign(tf.where(ctx.finite, total / self.strategy.num_replicas_in_sync, old))
        grads = self.weighting.combine(pieces, self.groups, ctx)
        if self.mixed_float16:
            # The LossScaleOptimizer skips a step whose (scaled) gradients are not finite: an overflow halves its
            # scale; non-finite losses are made to look the same, and the guard counts only them.
            poison = tf.where(losses_finite, 1.0, float("nan"))
            grads = [g * tf.cast(poison, g.dtype) for g in grads]
            self.optimizer.apply_gradients(zip(grads, self.variables))
            return StepResult(phase.stats, phase.weights, losses, ~losses_finite, all_finite(grads))
        applied = ctx.finite & all_finite(grads)
        apply_if(self.optimizer, applied, grads, self.variables)
        return StepResult(phase.stats, phase.weights, losses, ~applied, applied)

    def forward_backward(self, inputs: dict, labels: dict, loss_weights: dict, mix: MixDraw | None = None) -> PhaseOne:
        """Phase 1 on one replica's batch: forward, losses, the weighting's objectives and gradient pieces
        (XLA-compiled under `training.jit_compile`)."""
        ctx = self._context()
        if self.mixup is not None and mix is not None:
            inputs = self.mixup.mix(inputs, mix)
        with tf.GradientTape(persistent=self.weighting.persistent_tape) as tape:
            outputs = self.model(inputs, training=True, representation=self.weighting.needs_representation)
            ctx.representation = outputs.get("representation")
            stats, task_losses = batch_stats(self.tasks, outputs, labels, loss_weights)
            if mix is not None:  # λ·L(y) + (1 − λ)·L(y[π])
                partners = Mixup.partner(labels, mix.order), Mixup.partner(loss_weights, mix.order)
                _, other = batch_stats(self.tasks, outputs, *partners)
                task_losses = {n: mix.lam * loss + (1.0 - mix.lam) * other[n] for n, loss in task_losses.items()}
            if self.distillation is not None:  # the teacher's soft targets (the metrics stay on the true labels)
                task_losses = self.distillation.mix(inputs, outputs, labels, loss_weights, task_losses)
            presence = task_presence(self.tasks, labels, loss_weights)
            extra = self._extra_loss(outputs)
            task_losses = self._warmed_up(task_losses, ctx.step)
            objectives = self.weighting.objectives(task_losses, presence, extra, self.optimizer.scale_loss, ctx)
        pieces = dense(self.weighting.gradients(tape, objectives, self.groups, ctx))
        weights = objectives["weights"]
        total = self.weighting.weighted_sum(weights, task_losses) + (extra if extra is not None else 0.0)
        losses = tf.stack(
            [
                *(tf.cast(task_losses[n], tf.float32) for n in self.weighting.names),
                tf.cast(extra, tf.float32) if extra is not None else tf.zeros(()),
            ]
        )
        stats = flatten({"stats": stats, "loss": total, "steps": tf.zeros(()), "nonfinite": tf.zeros(())})
        return PhaseOne(pieces, stats, weights, losses)

    def train_batch(self, batch: tuple) -> tf.Tensor:
        """One step on every replica; its statistics are added to `self.sums`. Returns the task weights [tasks]."""
        step, before = tf.identity(self.optimizer.iterations), self.part_rates.before()  # before: [] if no part rates
        if self.mixup is not None:  # drawn here, outside XLA, for every replica's batch
            replica_batch = self.global_batch_size // self.strategy.num_replicas_in_sync
            batch = (*batch, self.mixup.draw(step, replica_batch))
        result = run_replicas(self.strategy, self.compiled.replica_step, batch)
        bad, losses, applied = self._first((result.bad, result.losses, result.applied))
        self.part_rates.rescale(before, step)
        if self.average is not None:
            self.average.update(applied)
        summed = self.strategy.reduce(SUM, result.stats, axis=None)
        # A skipped step counts (the step counter and the input pipeline move on) but adds no statistics.
        self.sums.assign_add(tf.where(bad, self._skipped_step, summed + self._one_step))
        self.optimizer.iterations.assign_add(tf.cast(~applied, self.optimizer.iterations.dtype))
        self.guard.record(bad, losses, self.optimizer.iterations)
        return self._first(result.weights)

    def _steps(self, iterator, num_steps):
        """`num_steps` steps in one graph call (`training.steps_per_execution`). Returns the last task weights.

        The step is traced once, inside the loop (the model's forward and backward pass are the bulk of tracing).
        """

        def more(i, _):  # after the first step, a stop request or the guard's stop ends the call
            stop = tf.logical_or(self.stop_flag.read_value(), self.guard.halt.read_value())
            return tf.logical_and(i < num_steps, tf.logical_or(tf.equal(i, 0), tf.logical_not(stop)))

        _, weights = tf.while_loop(
            more,
            lambda i, _: (i + 1, self.train_batch(next(iterator))),
            (tf.constant(0, num_steps.dtype), tf.zeros([len(self.tasks)])),
        )
        return weights

    def _extra_loss(self, outputs):
        """Regularisation and the gates' auxiliary losses: this replica's share of their mean over replicas (None
        when there are none)."""
        aux = aux_total(outputs)
        terms = [*self.model.losses, *([] if aux is None else [aux])]
        return tf.nn.scale_regularization_loss(tf.add_n(terms)) if terms else None

    def _warmed_up(self, task_losses: dict, step: tf.Tensor) -> dict:
        """Each task's loss times its warm-up ramp min(1, step / warmup_steps) (tasks without warm-up unchanged)."""
        ramps = {t.name: t.warmup_steps for t in self.tasks if t.warmup_steps}
        if not ramps:
            return task_losses
        step = tf.cast(step, tf.float32)
        return {
            name: loss * tf.minimum(1.0, step / float(ramps[name])) if name in ramps else loss
            for name, loss in task_losses.items()
        }

    def _distributed_batches(self, batch: int, step: int, total: int) -> Any:
        """The training batches from `step` on, split across replicas: each multi_worker worker reads its own file
        shard (data.sharding: files), or every worker reads the whole batch stream and keeps its part."""
        if not self.data.per_worker:
            dataset = self.data.train_dataset(batch, start_step=step, total_steps=total)
            return self.strategy.experimental_distribute_dataset(dataset)

        def worker_batches(ctx: tf.distribute.InputContext) -> tf.data.Dataset:
            shard = (ctx.input_pipeline_id, ctx.num_input_pipelines)
            dataset = self.data.train_dataset(batch, start_step=step, total_steps=total, shard=shard)
            per_replica = ctx.get_per_replica_batch_size(batch)
            return dataset if per_replica == batch // ctx.num_input_pipelines else dataset.rebatch(per_replica)

        return self.strategy.distribute_datasets_from_function(worker_batches)

    def _global_weights(self, loss_weights: dict) -> dict:
        """A multi_worker worker reading its own file shard has each task's labelled-example masks: divided here
        by their sum over the global batch (one small sum across replicas), they are the weights the pipeline gives
        a batch read whole."""
        if not self.data.per_worker:
            return loss_weights
        names = list(loss_weights)
        totals = self._context().all_reduce(tf.stack([tf.reduce_sum(loss_weights[n]) for n in names]))
        return {n: loss_weights[n] / tf.maximum(totals[i], 1e-12) for i, n in enumerate(names)}

    def _context(self) -> StepContext:
        replicas = self.strategy.num_replicas_in_sync
        scale = getattr(self.optimizer, "dynamic_scale", None)
        return StepContext(
            step=self.optimizer.iterations,
            loss_scale=1.0 if scale is None else scale,
            all_reduce=all_reduce if replicas > 1 else (lambda x: x),
            mixed_float16=scale is not None,
        )

    def _first(self, values):
        """Values identical on every replica: the first replica's, without communication."""
        return tf.nest.map_structure(lambda w: self.strategy.experimental_local_results(w)[0], values)

    def _replica_task_gradients(self, inputs, labels, loss_weights):
        """Each task's loss gradient on the shared variables, summed across replicas, in inference mode (no
        dropout or gate noise, so measuring does not change the run's random draws): → (norms [tasks], cosine
        similarities [tasks, tasks])."""
        scale = self.optimizer.scale_loss
        loss_weights = self._global_weights(loss_weights)
        with tf.GradientTape(persistent=True) as tape:
            outputs = self.model(inputs, training=False)
            _, task_losses = batch_stats(self.tasks, outputs, labels, loss_weights)
            scaled = [scale(task_losses[n]) for n in self.weighting.names]
        ctx = self._context()
        grads = tf.stack([flatten(gradient(tape, loss, self.groups.shared)) for loss in scaled])
        grads = ctx.all_reduce(grads) / tf.cast(ctx.loss_scale, tf.float32)
        norms = tf.norm(grads, axis=1)
        safe = tf.where(norms > 0, norms, 1.0)
        cosine = tf.matmul(grads, grads, transpose_b=True) / (safe[:, None] * safe[None, :])
        return norms, cosine

    def _step_with_gradient_stats(self, iterator):
        """One step, after measuring the task gradients on its batch. Returns (weights, norms, cosines)."""
        batch = next(iterator)
        norms, cosine = self._first(run_replicas(self.strategy, self._replica_task_gradients, batch))
        return self.train_batch(batch), norms, cosine

    def _reduce_stop_votes(self, vote):
        """Multi-worker: true on every worker when any worker was asked to stop (one tiny all-reduce)."""
        votes = self.strategy.run(lambda v: tf.identity(v), args=(vote,))
        return self.strategy.reduce(SUM, votes, axis=None) > 0

    # ---- loops (Python) ---------------------------------------------------------------------------------------

    def fit(self, hooks: TrainerHooks, eval_dataset: tf.data.Dataset | None = None) -> int:
        """Trains until `training.steps` (or `epochs` × steps per epoch) or early stopping.

        Args:
            hooks: a TrainerHooks.
            eval_dataset: batched eval split (None: no evaluation).
        """
        try:
            return self._fit(hooks, eval_dataset)
        finally:  # a trace cut short by the end of training, a stop or an error is still written
            self.profile.stop(int(self.optimizer.iterations.numpy()))

    def _fit(self, hooks: TrainerHooks, eval_dataset: tf.data.Dataset | None) -> int:
        cfg, batch = self.config, self.global_batch_size
        per_epoch = self.data.steps_per_epoch(batch)
        total = total_steps(cfg, self.data)
        num_epochs = -(-total // per_epoch)
        eval_every = cfg.eval_every or max(per_epoch // cfg.evals_per_epoch, 1)
        ckpt_every = cfg.checkpoint_every or eval_every
        # `auto`: everything up to the next log/eval/checkpoint step runs as one graph call; the host has nothing
        # to do in between, since the step statistics accumulate in `self.sums`.
        per_call = total if cfg.steps_per_execution == "auto" else cfg.steps_per_execution
        stats_every = self.gradient_stats_every
        step = int(self.optimizer.iterations.numpy())
        iterator = iter(self._distributed_batches(batch, step, total))
        if cfg.deterministic:  # traced now rather than at the first call (the same trace serves every call)
            hooks.on_step_ops(graph_op_types(self.train_chunk.get_concrete_function(iterator, tf.constant(1))))
        while step < total:
            epoch, offset = divmod(step, per_epoch)
            hooks.on_epoch_start(epoch, num_epochs, per_epoch, offset)
            epoch_end = min((epoch + 1) * per_epoch, total)
            started = time.perf_counter()
            every = [cfg.log_every, eval_every, ckpt_every, *([stats_every] if stats_every else [])]
            while step < epoch_end:
                boundary = min([*(_next_multiple(step, k) for k in every), *self.profile.cuts(step)])
                n = min(per_call, epoch_end - step, boundary - step)
                self.profile.before(step)
                if stats_every and step % stats_every == 0:
                    n = 1
                    weights, norms, cosine = self.train_step_with_gradient_stats(iterator)
                    hooks.on_task_gradients(step, self._gradient_summary(norms.numpy(), cosine.numpy()))
                else:
                    weights = self.train_chunk(iterator, tf.constant(n))
                # The step counter: n steps, or fewer when a stop request or the guard ended the call early.
                step = int(self.optimizer.iterations.numpy())
                self.profile.after(step, total)
                if bool(self.guard.halt.numpy()):
                    raise self.guard.stop_error(hooks.last_checkpoint())
                if step % cfg.log_every == 0 or step == epoch_end:
                    seconds = time.perf_counter() - started
                    report = self.guard.report()
                    if report:
                        hooks.on_nonfinite(step, report)
                    hooks.on_train_log(step, self._train_summary(weights, seconds))
                    started = time.perf_counter()
                if eval_dataset is not None and (step % eval_every == 0 or step == total):
                    if hooks.on_eval(step, self._evaluate_averaged(eval_dataset)):
                        hooks.on_checkpoint(step)
                        return step
                if step % ckpt_every == 0 or step == total:
                    hooks.on_checkpoint(step)
                reason = self._stop_reason()
                if reason:
                    hooks.on_stop(step, reason)
                    raise Stopped(step, reason)
        return step

    def _train_summary(self, weights: tf.Tensor, seconds: float) -> dict:
        """The statistics summed since the last log line (and reset): metrics, the mean loss of the applied steps,
        the task weights, examples/s and the learning rate."""
        sums = self.read_and_reset_sums()
        summary = summarize(sums["stats"], self.tasks)
        summary["loss"] = float(sums["loss"]) / max(sums["steps"] - sums["nonfinite"], 1)
        summary["nonfinite_steps"] = int(self.guard.total.numpy())
        summary["weights"] = dict(zip(self.weighting.names, weights.numpy().tolist()))
        summary["examples_per_sec"] = sums["steps"] * self.global_batch_size / max(seconds, 1e-9)
        summary["learning_rate"] = float(np.asarray(self.optimizer.learning_rate))
        return summary

    def _evaluate_averaged(self, dataset: tf.data.Dataset) -> dict:
        """`evaluate` on the weights the run will keep: the averages with `training.ema_momentum`, else the raw
        weights."""
        if self.average is None:
            return self.evaluate(dataset)
        with self.average.swapped():
            return self.evaluate(dataset)

    def _stop_reason(self) -> str | None:
        """Why to stop now (e.g. "SIGTERM"), or None. Under multi-worker the workers vote, so all stop together."""
        if self.stop_request is None:
            return None
        local = self.stop_request.reason
        if not self.multi_worker:
            return local
        if bool(self._any_worker_stops(tf.constant(1 if local else 0)).numpy()):
            return local or "a stop request on another worker"
        return None

    def _gradient_summary(self, norms: np.ndarray, cosine: np.ndarray) -> dict:
        """{"norm": {task: |g_t|}, "cosine": {"a__b": cos(g_a, g_b)}} from the measured arrays."""
        names = self.weighting.names
        return {
            "norm": {n: float(norms[i]) for i, n in enumerate(names)},
            "cosine": {
                f"{a}__{b}": float(cosine[i, j]) for i, a in enumerate(names) for j, b in enumerate(names) if i < j
            },
        }


def total_steps(config: TrainingConfig, data: TaskData) -> int:
    """The run's optimizer steps: `training.steps`, else `epochs` × steps per epoch."""
    return config.steps or config.epochs * data.steps_per_epoch(config.batch_size)


def _next_multiple(step: int, k: int) -> int:
    return (step // k + 1) * k
