"""PCGrad: project away the parts of task gradients that conflict, on the shared variables.

Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020.
"""

from __future__ import annotations

from typing import Literal

import tensorflow as tf
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.weightings.base import TaskGradientWeighting

SQUARED_NORM_FLOOR = 1e-20


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
            coef = tf.where((dot < 0) & (j != i), dot / (tf.gather(norms, j) + SQUARED_NORM_FLOOR), 0.0)
            g = g - coef * other
        out.append(g)
    return tf.stack(out)  # [tasks, params]


@WEIGHTINGS.register("pcgrad")
class PCGrad(TaskGradientWeighting):
    """Each task's gradient α_t ∇L_t on the shared variables is projected off the others' where they conflict,
    in a random order drawn per step from `experiment.seed` and the step; the projected gradients are summed.
    Task-specific variables (towers, heads, MMoE gates) take their own task's gradient unchanged.

    Costs one backward pass per task instead of one in all.
    """

    class Config(StrictModel):
        type: Literal["pcgrad"] = Field(
            "pcgrad",
            description="Yu et al. 2020: each task's gradient on the shared variables is projected off every other "
            "task's where they conflict, in a random order from (`experiment.seed`, step); the projections "
            "are summed; one backward pass per task",
        )

    def surgery(self, grads, losses, presence, finite, ctx):
        n = len(self.names)
        seed = tf.stack([tf.cast(self.seed, tf.int64), tf.cast(ctx.step, tf.int64)])
        order = tf.argsort(tf.random.stateless_uniform([n, n], seed), axis=1)  # [tasks, tasks]
        return tf.reduce_sum(project_conflicts(grads, order), axis=0), tf.ones([n])
