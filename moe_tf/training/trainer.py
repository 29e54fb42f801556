"""The distributed training loop: one loop for every strategy (default, one_device, mirrored, multi_worker, tpu).

A step runs `strategy.run` inside a `tf.function`; per-task losses are sums over the replica's examples divided by
the *global* batch size, so the all-reduced gradient equals the single-device gradient of the global batch mean.
"""

from __future__ import annotations

import time

import numpy as np
import tensorflow as tf

from moe_tf.errors import DataError
from moe_tf.training.objectives import batch_stats, summarize

SUM = tf.distribute.ReduceOp.SUM


class Trainer:
    """Trains `model` on the tasks with `weighting` and `optimizer` under `strategy`.

    Args:
        model: a built MultiTaskModel (variables created under `strategy.scope()`).
        weighting: combines per-task losses (moe_tf.training.weightings).
        optimizer: a Keras 3 optimizer, built under the scope (LossScaleOptimizer under mixed_float16).
        strategy: the tf.distribute strategy.
        tasks: resolved TaskInfo list.
        config: the `training` config.
    """

    def __init__(self, model, weighting, optimizer, strategy, tasks, config):
        self.model = model
        self.weighting = weighting
        self.optimizer = optimizer
        self.strategy = strategy
        self.tasks = tasks
        self.config = config
        self.global_batch_size = config.batch_size
        self.variables = list(model.trainable_variables) + list(weighting.trainable_variables)
        self.jit_compile = resolve_jit_compile(config.jit_compile, strategy)
        # A step's statistics are packed into one float32 vector: one cross-replica reduction per step and one
        # running-sum variable that steps add to without waiting on the host; it is read (and reset) only when a
        # log line is due.
        self._template = self._stats_template()
        self.sums = tf.Variable(self._pack(self._template), trainable=False, name="step_stat_sums")
        self._one_step = self._pack({**self._template, "steps": tf.ones(())})  # counts a step, added once
        self.train_step = tf.function(self._train_step)
        self.train_chunk = tf.function(self._train_chunk)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True)
        # XLA: on one device the whole step compiles, optimizer update included; with several replicas the
        # optimizer all-reduces the gradients (a cross-replica call XLA cannot hold), so forward and backward compile.
        whole_step = self.jit_compile and _single_device(strategy)
        jit = lambda fn, on: tf.function(fn, jit_compile=True) if on else fn  # noqa: E731
        self._loss_and_grads = jit(self._replica_loss_and_grads, self.jit_compile and not whole_step)
        self._replica_step = jit(self._replica_train_step, whole_step)
        self._eval_stats = jit(self._replica_eval_stats, self.jit_compile)

    def _stats_template(self):
        """Zeros with the structure and shapes of one step's summed statistics."""
        images = tf.zeros((1, *self.model.raw_input_shape), tf.uint8)
        labels = {t.name: tf.zeros((1,), tf.float32 if t.kind == "regression" else tf.int64) for t in self.tasks}
        stats = batch_stats(self.tasks, self.model(images, training=False), labels)
        return {"stats": tf.nest.map_structure(tf.zeros_like, stats), "loss": tf.zeros(()), "steps": tf.zeros(())}

    @staticmethod
    def _pack(tree):
        return tf.concat([tf.reshape(tf.cast(t, tf.float32), [-1]) for t in tf.nest.flatten(tree)], axis=0)

    @staticmethod
    def _unpack(vector: np.ndarray, template):
        """Inverse of `_pack`: numpy arrays with `template`'s structure and shapes."""
        parts, start = [], 0
        for t in tf.nest.flatten(template):
            size = int(np.prod(t.shape))
            parts.append(vector[start:start + size].reshape(t.shape))
            start += size
        return tf.nest.pack_sequence_as(template, parts)

    def read_and_reset_sums(self) -> dict:
        """The statistics summed since the last call (numpy, structured like one step's), and zeroes the sums."""
        values = self._unpack(self.sums.numpy(), self._template)
        self.sums.assign(tf.zeros_like(self.sums))
        return values

    # ---- steps (graph) ----------------------------------------------------------------------------------------

    def _replica_loss_and_grads(self, images, labels):
        """Forward, losses and gradients on one replica's batch (XLA-compiled under `training.jit_compile`)."""
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            stats = batch_stats(self.tasks, outputs, labels)
            task_losses = {name: s["loss_sum"] / self.global_batch_size for name, s in stats["tasks"].items()}
            total, weights = self.weighting.combine(task_losses)
            if self.model.losses:  # L2 and auxiliary losses, split across replicas
                total += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.scale_loss(total)
        grads = tape.gradient(scaled, self.variables)
        return grads, self._pack({"stats": stats, "loss": total, "steps": tf.zeros(())}), weights

    def _replica_train_step(self, images, labels):
        grads, packed, weights = self._loss_and_grads(images, labels)
        self.optimizer.apply_gradients(zip(grads, self.variables))  # all-reduces the gradients across replicas
        return packed, weights

    def _run_replicas(self, replica_fn, batch):
        """`strategy.run` on a batch of (images, labels). The replica function is handed over as plain Python:
        given a jit-compiled tf.function, MirroredStrategy would compile all replicas as one XLA cluster on the
        first device."""
        return self.strategy.run(lambda images, labels: replica_fn(images, labels), args=batch)

    def _train_step(self, iterator):
        """One step; its statistics are added to `self.sums`. Returns the task weights."""
        packed, weights = self._run_replicas(self._replica_step, next(iterator))
        self.sums.assign_add(self.strategy.reduce(SUM, packed, axis=None) + self._one_step)
        # Task weights are identical on every replica: take the first one's, no communication.
        return tf.nest.map_structure(lambda w: self.strategy.experimental_local_results(w)[0], weights)

    def _train_chunk(self, iterator, num_steps):
        """`num_steps` (>= 2) steps in one graph call (`training.steps_per_execution`). Returns the task weights."""
        weights = self._train_step(iterator)
        for _ in tf.range(num_steps - 1):
            weights = self._train_step(iterator)
        return weights

    def _replica_eval_stats(self, images, labels):
        return self._pack(batch_stats(self.tasks, self.model(images, training=False), labels))

    def _eval_step(self, batch):
        packed = self._run_replicas(self._eval_stats, batch)
        return self.strategy.reduce(SUM, packed, axis=None)

    # ---- loops (Python) ---------------------------------------------------------------------------------------

    def evaluate(self, dataset) -> dict:
        """Exact metrics over a whole (batched, global-batch) dataset."""
        total = None
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            packed = self.eval_step(batch).numpy().astype(np.float64)
            total = packed if total is None else total + packed
        if total is None:
            raise ValueError("evaluation dataset is empty")
        summary = summarize(self._unpack(total, self._template["stats"]))
        weights = self.weighting.task_weights
        summary["loss"] = sum(weights[n] * m["loss"] for n, m in summary["tasks"].items())
        return summary

    def fit(self, data, hooks, eval_dataset=None):
        """Trains until `training.steps` (or `epochs` × steps per epoch) or early stopping.

        Args:
            data: TaskData.
            hooks: receives `on_train_log(step, summary)`, `on_eval(step, summary) -> stop`, `on_checkpoint(step)`,
                `on_epoch_start(epoch, num_epochs, steps_per_epoch)`.
            eval_dataset: batched eval split (None: no evaluation).
        """
        cfg, batch = self.config, self.global_batch_size
        per_epoch = data.steps_per_epoch(batch)
        if not per_epoch:
            raise DataError(f"the training split has fewer examples than one global batch ({batch}); "
                            "lower training.batch_size")
        total = cfg.steps or cfg.epochs * per_epoch
        num_epochs = -(-total // per_epoch)
        eval_every = cfg.eval_every or per_epoch
        ckpt_every = cfg.checkpoint_every or eval_every
        # `auto`: everything up to the next log/eval/checkpoint step runs as one graph call; the host has nothing
        # to do in between, since the step statistics accumulate in `self.sums`.
        per_call = total if cfg.steps_per_execution == "auto" else cfg.steps_per_execution
        step = int(self.optimizer.iterations.numpy())
        first_epoch, offset = divmod(step, per_epoch)
        dataset = data.train_dataset(batch, first_epoch, num_epochs - first_epoch).skip(offset)
        iterator = iter(self.strategy.experimental_distribute_dataset(dataset))
        while step < total:
            epoch, offset = divmod(step, per_epoch)
            hooks.on_epoch_start(epoch, num_epochs, per_epoch, offset)
            epoch_end = min((epoch + 1) * per_epoch, total)
            started = time.perf_counter()
            while step < epoch_end:
                boundary = min(_next_multiple(step, k) for k in (cfg.log_every, eval_every, ckpt_every))
                n = min(per_call, epoch_end - step, boundary - step)
                weights = self.train_step(iterator) if n == 1 else self.train_chunk(iterator, tf.constant(n))
                step += n
                if step % cfg.log_every == 0 or step == epoch_end:
                    seconds = time.perf_counter() - started
                    sums = self.read_and_reset_sums()
                    summary = summarize(sums["stats"])
                    summary["loss"] = float(sums["loss"]) / sums["steps"]
                    summary["weights"] = {k: float(v) for k, v in weights.items()}
                    summary["examples_per_sec"] = sums["steps"] * batch / max(seconds, 1e-9)
                    summary["learning_rate"] = float(np.asarray(self.optimizer.learning_rate))
                    hooks.on_train_log(step, summary)
                    started = time.perf_counter()
                if eval_dataset is not None and (step % eval_every == 0 or step == total):
                    if hooks.on_eval(step, self.evaluate(eval_dataset)):
                        hooks.on_checkpoint(step)
                        return step
                if step % ckpt_every == 0 or step == total:
                    hooks.on_checkpoint(step)
        return step


def _next_multiple(step: int, k: int) -> int:
    return (step // k + 1) * k


def resolve_jit_compile(setting: str | bool, strategy) -> bool:
    """`training.jit_compile`: `auto` compiles with XLA when GPUs are present and not on TPU (where the whole step
    is compiled anyway); `true`/`false` force it.

    Not on CPU by default: XLA's CPU convolutions and matmuls are slower than TensorFlow's oneDNN kernels (measured:
    33.2 vs 17.4 s per Fashion-MNIST epoch); it pays only for tiny, dispatch-bound models.
    """
    if setting == "auto":
        return bool(tf.config.list_logical_devices("GPU")) and not isinstance(strategy, tf.distribute.TPUStrategy)
    return bool(setting)


def _single_device(strategy) -> bool:
    """True for the default strategy and OneDeviceStrategy: no cross-replica communication in a step."""
    return isinstance(strategy, tf.distribute.OneDeviceStrategy) or type(strategy).__name__ == \
        "_DefaultDistributionStrategy"
