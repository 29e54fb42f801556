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
        # Running sums of the step statistics live in variables, so steps never wait on the host;
        # they are read (and reset) only when a log line is due.
        self.sums = tf.nest.map_structure(lambda t: tf.Variable(tf.zeros_like(t), trainable=False),
                                          self._stats_template())
        self.train_step = tf.function(self._train_step)
        self.train_chunk = tf.function(self._train_chunk)
        self.eval_step = tf.function(self._eval_step, reduce_retracing=True)

    def _stats_template(self):
        """Zeros with the structure and shapes of one step's summed statistics."""
        images = tf.zeros((1, *self.model.raw_input_shape), tf.uint8)
        labels = {t.name: tf.zeros((1,), tf.float32 if t.kind == "regression" else tf.int64) for t in self.tasks}
        stats = batch_stats(self.tasks, self.model(images, training=False), labels)
        return {"stats": tf.nest.map_structure(tf.zeros_like, stats), "loss": tf.zeros(()), "steps": tf.zeros(())}

    def read_and_reset_sums(self) -> dict:
        values = tf.nest.map_structure(lambda v: v.numpy(), self.sums)
        for v in tf.nest.flatten(self.sums):
            v.assign(tf.zeros_like(v))
        return values

    # ---- steps (graph) ----------------------------------------------------------------------------------------

    def _replica_train_step(self, images, labels):
        with tf.GradientTape() as tape:
            outputs = self.model(images, training=True)
            stats = batch_stats(self.tasks, outputs, labels)
            task_losses = {name: s["loss_sum"] / self.global_batch_size for name, s in stats["tasks"].items()}
            total, weights = self.weighting.combine(task_losses)
            if self.model.losses:  # L2 and auxiliary losses, split across replicas
                total += tf.nn.scale_regularization_loss(tf.add_n(self.model.losses))
            scaled = self.optimizer.scale_loss(total)
        grads = tape.gradient(scaled, self.variables)
        self.optimizer.apply_gradients(zip(grads, self.variables))
        return {"stats": stats, "loss": total, "weights": weights}

    def _distributed_train_step(self, batch):
        out = self.strategy.run(self._replica_train_step, args=batch)
        reduce = lambda v: self.strategy.reduce(SUM, v, axis=None)  # noqa: E731
        mean = lambda v: self.strategy.reduce(tf.distribute.ReduceOp.MEAN, v, axis=None)  # noqa: E731
        return {"stats": tf.nest.map_structure(reduce, out["stats"]), "loss": reduce(out["loss"]),
                "weights": tf.nest.map_structure(mean, out["weights"])}

    def _accumulate(self, out):
        step_sums = {"stats": out["stats"], "loss": out["loss"], "steps": tf.ones(())}
        tf.nest.map_structure(lambda var, value: var.assign_add(value), self.sums, step_sums)
        return out["weights"]

    def _train_step(self, iterator):
        """One step; its statistics are added to `self.sums`. Returns the task weights."""
        return self._accumulate(self._distributed_train_step(next(iterator)))

    def _train_chunk(self, iterator, num_steps):
        """`num_steps` (>= 2) steps in one graph call (`training.steps_per_execution`)."""
        weights = self._accumulate(self._distributed_train_step(next(iterator)))
        for _ in tf.range(num_steps - 1):
            weights = self._accumulate(self._distributed_train_step(next(iterator)))
        return weights

    def _eval_step(self, batch):
        def replica_step(images, labels):
            return batch_stats(self.tasks, self.model(images, training=False), labels)

        out = self.strategy.run(replica_step, args=batch)
        return tf.nest.map_structure(lambda v: self.strategy.reduce(SUM, v, axis=None), out)

    # ---- loops (Python) ---------------------------------------------------------------------------------------

    def evaluate(self, dataset) -> dict:
        """Exact metrics over a whole (batched, global-batch) dataset."""
        total = None
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            stats = tf.nest.map_structure(lambda t: t.numpy(), self.eval_step(batch))
            total = stats if total is None else tf.nest.map_structure(np.add, total, stats)
        if total is None:
            raise ValueError("evaluation dataset is empty")
        summary = summarize(total)
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
                n = min(cfg.steps_per_execution, epoch_end - step, boundary - step)
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

