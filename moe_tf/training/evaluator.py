"""Exact metrics of a model on a whole split, under any strategy (sums reduced across replicas; for `gauc`, the
predictions gathered from every replica and worker)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from moe_tf.training.metrics import group_auc
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
        self.grouped = [t for t in tasks if "gauc" in t.metrics]  # their predictions are gathered (group_auc)
        replica = (
            tf.function(self._replica_stats, jit_compile=True, autograph=False) if jit_compile else self._replica_stats
        )
        self._replica = replica
        self.step = tf.function(self._step, reduce_retracing=True, autograph=False)

    def _replica_stats(self, inputs, labels, loss_weights):
        outputs = self.model(inputs, training=False)
        stats, _ = batch_stats(self.tasks, outputs, labels)
        grouped = {
            t.name: (labels[t.group_key], outputs["outputs"][t.name][:, 0], labels[t.name]) for t in self.grouped
        }
        return flatten(stats), grouped

    def _step(self, batch):
        flat, grouped = run_replicas(self.strategy, self._replica, batch)
        gathered = tf.nest.map_structure(lambda v: self.strategy.gather(v, axis=0), grouped)
        return self.strategy.reduce(SUM, flat, axis=None), gathered

    def evaluate(self, dataset, task_weights: dict) -> dict:
        """Exact metrics over a whole (batched, global-batch) dataset.

        Args:
            task_weights: {task: w_t} (numbers or scalar tensors), the weighting's current weights: `loss` is
                Σ_t w_t · L_t.
        """
        total = None
        predictions: dict[str, list] = {t.name: [] for t in self.grouped}
        for batch in self.strategy.experimental_distribute_dataset(dataset):
            packed, gathered = self.step(batch)
            packed = packed.numpy().astype(np.float64)
            total = packed if total is None else total + packed
            for name, parts in gathered.items():
                predictions[name].append([p.numpy() for p in parts])
        if total is None:
            raise ValueError("evaluation dataset is empty")
        stats = unflatten(total, self.template)
        for name, batches in predictions.items():
            groups, scores, labels = (np.concatenate(column) for column in zip(*batches))
            keep = labels >= 0
            stats["tasks"][name]["gauc"] = group_auc(groups[keep], scores[keep], labels[keep])
        summary = summarize(stats, self.tasks)
        summary["loss"] = sum(float(task_weights[n]) * m["loss"] for n, m in summary["tasks"].items())
        return summary
