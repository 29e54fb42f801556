"""CAGrad: the update that maximises the worst task's improvement within a ball around the average gradient.

Liu, Liu, Jin, Stone and Liu, "Conflict-Averse Gradient Descent for Multi-task Learning", NeurIPS 2021.
"""

from __future__ import annotations

from typing import Literal

import tensorflow as tf
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.weightings.base import EPS, TaskGradientWeighting

STEP, MOMENTUM = 5.0, 0.5  # the solver's gradient descent on the softmax logits


def cagrad_direction(grads, c: float, iterations: int = 200, rescale: bool = True):
    """CAGrad's update from task gradients [tasks, params].

    With g0 the mean gradient and G the Gram matrix, w on the simplex minimises F(w) = g_wᵀ g0 + √φ |g_w|
    (g_w = Σ w_t g_t, φ = c² |g0|²); the update is d = g0 + (√φ / |g_w|) g_w, divided by 1 + c² when
    `rescale` (the paper's default). w = softmax(θ) is found by `iterations` steps of gradient descent with
    momentum on θ over the Gram matrix normalised by the mean squared gradient norm, as the authors' solver does
    (with a smaller step, 5 rather than 25, which converges where theirs oscillates).

    Returns:
        (d [params], w [tasks]).
    """
    n = grads.shape[0]
    gram = tf.matmul(grads, grads, transpose_b=True)
    norm = tf.reduce_mean(tf.linalg.diag_part(gram)) + EPS
    g = gram / norm  # scale-free
    g_mean = tf.reduce_mean(g, axis=1)  # G g0 / |.|: [tasks]
    phi_sqrt = c * tf.sqrt(tf.reduce_mean(g_mean) + EPS)  # c |g0| (normalised)

    def body(i, theta, velocity):
        w = tf.nn.softmax(theta)
        g_w = tf.linalg.matvec(g, w)
        dw = g_mean + phi_sqrt * g_w / tf.sqrt(tf.reduce_sum(w * g_w) + EPS)  # ∂F/∂w
        dtheta = w * (dw - tf.reduce_sum(w * dw))  # through the softmax
        velocity = MOMENTUM * velocity + dtheta
        return i + 1, theta - STEP * velocity, velocity

    _, theta, _ = tf.while_loop(lambda i, *_: i < iterations, body, (tf.constant(0), tf.zeros([n]), tf.zeros([n])))
    w = tf.nn.softmax(theta)
    g_w = tf.linalg.matvec(grads, w, transpose_a=True)
    g0 = tf.reduce_mean(grads, axis=0)
    lam = c * tf.norm(g0) / (tf.norm(g_w) + EPS)
    d = g0 + lam * g_w
    return (d / (1.0 + c * c) if rescale else d), w


@WEIGHTINGS.register("cagrad")
class CAGrad(TaskGradientWeighting):
    """The shared variables get T · d, with d CAGrad's update from the task gradients g_t = ∇(α_t L_t) (T · d is
    the sum of the gradients when they agree and c = 0, like `fixed`). `c` in [0, 1) trades the average loss
    (c = 0: plain gradient descent) against the worst task. Each task's own variables get its own gradient.
    """

    class Config(StrictModel):
        type: Literal["cagrad"] = Field(
            "cagrad",
            description="Liu et al. 2021: T·(g0 + c|g0|/|g_w| g_w)/(1 + c²), g0 the mean task gradient and w on the "
            "simplex minimising g_wᵀg0 + c|g0||g_w|; one backward pass per task",
        )
        c: float = Field(0.4, ge=0.0, lt=1.0, description="c: radius of the ball around the average gradient")
        rescale: bool = Field(True, description="divide the update by 1 + c², as the paper does")
        iterations: int = Field(
            200,
            ge=1,
            description="solver steps for the task weights (gradient descent on softmax logits over the normalised "
            "Gram matrix)",
        )

    def surgery(self, grads, losses, presence, finite, ctx):
        d, _ = cagrad_direction(grads, self.config.c, self.config.iterations, self.config.rescale)
        n = len(self.names)
        return n * d, tf.ones([n])
