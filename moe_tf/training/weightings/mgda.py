"""MGDA: the minimum-norm convex combination of the task gradients (a common descent direction), optionally on the
gradients of the shared representation (MGDA-UB), which is much cheaper.

Sener and Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import tensorflow as tf
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.vectors import flatten
from moe_tf.training.weightings.base import (
    EPS,
    TaskGradientWeighting,
    all_finite,
    assign_if,
    gradient,
    state_variable,
)


def min_norm_weights(gram, max_iterations: int = 250, tolerance: float = 1e-6):
    """Frank–Wolfe for min_{λ ∈ simplex} |Σ_t λ_t g_t|², given the Gram matrix G_ij = g_i · g_j (Sener & Koltun,
    Algorithm 2): from uniform λ, repeatedly move toward the vertex e_t with the smallest (Gλ)_t by the exact line
    search γ = (λᵀGλ − (Gλ)_t) / (λᵀGλ + G_tt − 2(Gλ)_t), until λ changes by less than `tolerance`.

    Args:
        gram: [tasks, tasks] float32.

    Returns:
        λ [tasks] on the simplex.
    """
    n = gram.shape[0]
    lam0 = tf.fill([n], 1.0 / n)

    def body(i, lam, change):
        g_lam = tf.linalg.matvec(gram, lam)
        t = tf.argmin(g_lam)
        vv, ve, ee = tf.reduce_sum(lam * g_lam), g_lam[t], gram[t, t]
        denom = vv + ee - 2.0 * ve
        gamma = tf.where(denom > EPS, tf.clip_by_value((vv - ve) / tf.maximum(denom, EPS), 0.0, 1.0), 0.0)
        new = (1.0 - gamma) * lam + gamma * tf.one_hot(t, n)
        return i + 1, new, tf.reduce_sum(tf.abs(new - lam))

    _, lam, _ = tf.while_loop(
        lambda i, lam, change: (i < max_iterations) & (change > tolerance),
        body,
        (tf.constant(0), lam0, tf.constant(np.inf, tf.float32)),
    )
    return lam


@WEIGHTINGS.register("mgda")
class MGDA(TaskGradientWeighting):
    """The shared variables get T · Σ_t λ_t g_t / n_t, where g_t = ∇(α_t L_t) on the shared variables, n_t the
    `normalization` (none: 1; l2: |g_t|; loss: L_t; loss+: L_t |g_t|) and λ the min-norm point of the normalised
    gradients' convex hull (Frank–Wolfe on their Gram matrix). Scaled by T so that with agreeing tasks the step is
    as large as `fixed`'s. Each task's own variables get its own gradient. The logged weights are the effective
    T λ_t α_t / n_t of the last step.

    `upper_bound: true` (MGDA-UB) computes λ from the gradients with respect to the shared representation
    (the tensor the top of the architecture reads: the top expert level's shared input, or shared_bottom's shared
    block output), whose Gram matrix is summed across replicas before the backward pass; then one backward pass of
    T Σ_t λ_t α_t L_t / n_t gives the shared gradient. It costs T backward passes through the task-specific top of
    the model instead of T full ones.
    """

    class Config(StrictModel):
        type: Literal["mgda"] = Field(
            "mgda",
            description="Sener & Koltun 2018: T·Σ λ_t g_t / n_t with λ the min-norm point of the (normalised) "
            "gradients' convex hull, by Frank–Wolfe on their Gram matrix; one backward pass per task "
            "(`upper_bound`: one backward pass + one short one per task)",
        )
        upper_bound: bool = Field(
            False,
            description="MGDA-UB: λ from the gradients of the shared representation (the tensor the top of the "
            "architecture reads), then one backward pass of T Σ λ_t α_t L_t / n_t",
        )
        normalization: Literal["none", "l2", "loss", "loss+"] = Field(
            "none",
            description="n_t, what each task's gradient is divided by: none: 1; l2: |g_t|; loss: L_t; loss+: L_t |g_t|",
        )
        max_iterations: int = Field(250, ge=1, description="Frank–Wolfe iterations at most")

    def __init__(self, task_weights, config, seed=0, tasks=(), steps_per_epoch=1):
        super().__init__(task_weights, config, seed, tasks, steps_per_epoch)
        self.upper_bound = config.upper_bound
        self.needs_representation = self.reduces_in_backward = self.upper_bound
        self.last = state_variable("mgda_weights", np.asarray(list(self.task_weights.values())))

    def state(self):
        return {"weights": self.last}

    def weight_vector(self, step=None):
        return tf.identity(self.last.value)

    def solve(self, gram, losses):
        """λ from the Gram matrix of the (unnormalised) gradients; returns the effective weights T λ_t / n_t on
        the gradients of α_t L_t."""
        norms = tf.sqrt(tf.maximum(tf.linalg.diag_part(gram), 0.0))
        n = {"none": tf.ones_like(losses), "l2": norms, "loss": losses, "loss+": losses * norms}[
            self.config.normalization
        ]
        n = tf.where(n > EPS, n, 1.0)
        lam = min_norm_weights(gram / (n[:, None] * n[None, :]), self.config.max_iterations)
        return len(self.names) * lam / n

    def surgery(self, grads, losses, presence, finite, ctx):
        coefficients = self.solve(tf.matmul(grads, grads, transpose_b=True), losses)
        assign_if(finite, (self.last, coefficients * self.alpha))
        return tf.linalg.matvec(grads, coefficients, transpose_a=True), tf.ones([len(self.names)])

    # ---- MGDA-UB: λ before the backward pass -----------------------------------------------------------------

    def gradients(self, tape, objectives, groups, ctx):
        if not self.upper_bound:
            return super().gradients(tape, objectives, groups, ctx)
        scale = tf.cast(ctx.loss_scale, tf.float32)
        rep = ctx.representation
        rep_grads = tf.stack(
            [flatten([gradient(tape, objectives["tasks"][n], [rep])[0]]) / scale for n in self.names]
        )  # [tasks, batch · features] on this replica's rows
        gram, losses = ctx.all_reduce(
            (tf.matmul(rep_grads, rep_grads, transpose_b=True), tf.stop_gradient(objectives["losses"]))
        )
        coefficients = tf.stop_gradient(self.solve(gram, losses))
        # Σ_t c_t ∇(α_t L_t) in one backward pass (the tape recorded the task losses, not sums formed after it)
        tasks = [objectives["tasks"][n] for n in self.names]
        own_vars = [v for n in self.names for v in groups.tasks[n]]
        grads = [
            *gradient(tape, tasks, groups.shared, output_gradients=tf.unstack(coefficients)),
            *gradient(tape, tasks, own_vars),  # each task's own variables: its own gradient
            *(tf.zeros_like(v) for v in groups.extra),
        ]
        if objectives["extra"] is not None:
            grads = [g + e for g, e in zip(grads, gradient(tape, objectives["extra"], groups.all))]
        return {"grads": grads, "weights": coefficients * self.alpha, "finite": tf.cast(all_finite(gram), tf.float32)}

    def combine(self, pieces, groups, ctx):
        if not self.upper_bound:
            return super().combine(pieces, groups, ctx)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        # The weights are identical on every replica, so their sum is replicas × the weights.
        finite = (pieces["finite"] > replicas - 0.5) & tf.convert_to_tensor(ctx.finite)
        assign_if(finite, (self.last, pieces["weights"] / replicas))
        return pieces["grads"]
