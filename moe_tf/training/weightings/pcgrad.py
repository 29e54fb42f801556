"""PCGrad: project away the parts of task gradients that conflict, on the shared variables.

Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import tensorflow as tf

from moe_tf.config.base import StrictModel
from moe_tf.training.weightings import WEIGHTINGS
from moe_tf.training.weightings.base import Weighting, gradient

EPS = 1e-20


def project_conflicts(grads, order):
    """PCGrad's surgery on flattened task gradients.

    For each task i, in the order given by `order[i]`: where g_i · g_j < 0, g_i ← g_i − (g_i · g_j / |g_j|²) g_j
    (with g_j the *original* gradient of task j). Homogeneous of degree 1, so it commutes with loss scaling.

    Args:
        grads: [tasks, params].
        order: int [tasks, tasks]: row i is a permutation of the tasks (task i itself is skipped).

    Returns:
        [tasks, params], the projected gradients.
    """
    num_tasks = grads.shape[0]
    norms = tf.reduce_sum(tf.square(grads), axis=1)  # [tasks]
    out = []
    for i in range(num_tasks):
        g = grads[i]
        for k in range(num_tasks):
            j = order[i, k]
            other = tf.gather(grads, j)  # [params]
            dot = tf.reduce_sum(g * other)
            coef = tf.where((dot < 0) & (j != i), dot / (tf.gather(norms, j) + EPS), 0.0)
            g = g - coef * other
        out.append(g)
    return tf.stack(out)  # [tasks, params]


@WEIGHTINGS.register("pcgrad")
class PCGrad(Weighting):
    """Each task's gradient α_t ∇L_t on the shared variables is projected off the others' where they conflict,
    in a random order drawn per step from `experiment.seed` and the step; the projected gradients are summed.
    Task-specific variables (towers, heads, MMoE gates) take their own task's gradient unchanged.

    Costs one backward pass per task instead of one in all.
    """

    persistent_tape = True

    class Config(StrictModel):
        type: Literal["pcgrad"] = "pcgrad"

    def objectives(self, task_losses, extra_loss, scale):
        weights = self.weights()
        return {"tasks": {name: scale(weights[name] * loss) for name, loss in task_losses.items()},
                "extra": None if extra_loss is None else scale(extra_loss)}

    def gradients(self, tape, objectives, groups):
        shared, own = [], {}
        for name, loss in objectives["tasks"].items():
            grads = gradient(tape, loss, groups.shared + groups.tasks[name])
            shared.append(grads[:len(groups.shared)])
            own[name] = grads[len(groups.shared):]
        extra = None if objectives["extra"] is None else gradient(tape, objectives["extra"], groups.all)
        return {"shared": shared, "own": own, "extra": extra}

    def combine(self, pieces, groups, step):
        names = list(pieces["own"])
        flat = tf.stack([tf.concat([tf.reshape(g, [-1]) for g in per_task], 0)
                         for per_task in pieces["shared"]])  # [tasks, shared params]
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(step, tf.int64)])
        order = tf.argsort(tf.random.stateless_uniform([len(names), len(names)], seed), axis=1)  # [tasks, tasks]
        summed = tf.reduce_sum(project_conflicts(flat, order), axis=0)  # [shared params]
        shared, start = [], 0
        for v in groups.shared:
            size = int(np.prod(v.shape))
            shared.append(tf.reshape(summed[start:start + size], v.shape))
            start += size
        grads = [*shared, *(g for name in names for g in pieces["own"][name]),
                 *(tf.zeros_like(v) for v in groups.extra)]
        if pieces["extra"] is not None:
            grads = [g + e for g, e in zip(grads, pieces["extra"])]
        return grads
