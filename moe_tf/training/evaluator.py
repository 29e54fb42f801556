"""Exact metrics of a model on a whole split, under any strategy (sums reduced across replicas)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from moe_tf.training.objectives import batch_stats, summarize
from moe_tf.training.replicas import SUM, run_replicas
from moe_tf.training.statistics import stats_template
from moe_tf.training.vectors import flatten, unflatten


class Evaluator:
    """Args:
    model: a built MultiTaskModel.
    strategy: the tf.distribute strategy the model's variables live under.
    tasks: resolved TaskInfo list.
    features: the model inputs ({feature: FeatureSpec}).
    jit_compile: compile each replica's forward pass with XLA.
    """

    def __init__(self, model, strategy, tasks, features, jit_compile: bool = False):
        self.model = model
        self.strategy = strategy
        self.tasks = tasks
        self.template = stats_template(model, tasks, features)
        replica = (
            tf.function(self._replica_stats, jit_compile=True, autograph=False) if jit_compile else self._replica_stats
        )
        self._replica = replica
        self.step = tf.function(self._step, reduce_retracing=True, autograph=False)

    def _replica_stats(self, inputs, labels, loss_weights):
        stats, _ = batch_stats(self.tasks, self.model(inputs, training=False), labels)
        return flatten(stats)

    def _step(self, batch):
        return self.strategy.reduce(SUM, run_replicas(self.strategy, self._replica, batch), axis=None)

    def evaluate(self, dataset, task_weights: dict) -> dict:
        """Exact metrics over a whole (batched, global-batch) dataset.

        Args:
            task_weights: {task: w_t} (numbers or scalar tensors), the weighting's current weights: `loss` is
                Σ_t w_t · L_t.
        """
        total = None
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            packed = self.step(batch).numpy().astype(np.float64)
            total = packed if total is None else total + packed
        if total is None:
            raise ValueError("evaluation dataset is empty")
        summary = summarize(unflatten(total, self.template), self.tasks)
        summary["loss"] = sum(float(task_weights[n]) * m["loss"] for n, m in summary["tasks"].items())
        return summary
