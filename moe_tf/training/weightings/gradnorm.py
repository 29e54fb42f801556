"""GradNorm: learn task weights that equalise the tasks' gradient norms on the last shared layer, adjusted by how
far each task has trained.

Chen, Badrinarayanan, Lee and Rabinovich, "GradNorm: Gradient Normalization for Adaptive Loss Balancing in Deep
Multitask Networks", ICML 2018.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import tensorflow as tf
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.errors import ConfigError
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.vectors import flatten
from moe_tf.training.weightings.adam import VectorAdam
from moe_tf.training.weightings.base import EPS, LossWeighting, all_finite, assign_if, gradient, state_variable

MIN_WEIGHT = 1e-3


@WEIGHTINGS.register("gradnorm")
class GradNorm(LossWeighting):
    """The step descends Σ_t w_t α_t L_t (one full backward pass) with learned weights w (initially 1, summing to
    the number of tasks T). Each step also differentiates every task's α_t L_t on W, the last shared layer (the
    top shared experts' last layer; shared_bottom's last shared layer): T short backward passes.

    From the global gradients, G_t = w_t |∇_W α_t L_t|, Ḡ their mean, r_t = (L_t / L_t(0)) / mean_s(L_s / L_s(0))
    the relative inverse training rate and the target Ḡ r_t^`alpha` (a constant); w takes an Adam step
    (`learning_rate`) on Σ_t |G_t − target_t| and is renormalised to sum to T. L_t(0) is the task's first loss.
    Tasks without labels in a step are left out of the means and the update.
    """

    persistent_tape = True
    gradient_based = True

    class Config(StrictModel):
        type: Literal["gradnorm"] = Field(
            "gradnorm",
            description="Chen et al. 2018: learned weights w (sum T) take an Adam step on Σ_t |G_t − Ḡ r_t^α|, with "
            "G_t = w_t |∇_W α_t L_t| on W, the last shared layer, and r_t the relative inverse training "
            "rate; one backward pass + one short one per task down to W",
        )
        alpha: float = Field(1.5, ge=0.0, description="asymmetry: how strongly slower tasks are pushed")
        learning_rate: float = Field(0.025, gt=0.0, description="Adam step size for the task weights")

    def __init__(self, task_weights, config, seed=0, tasks=(), steps_per_epoch=1):
        super().__init__(task_weights, config, seed, tasks, steps_per_epoch)
        n = len(self.names)
        self.w = state_variable("gradnorm_weights", np.ones(n))
        self.initial = state_variable("gradnorm_initial_loss", np.zeros(n))  # 0: not seen yet
        self.adam = VectorAdam("gradnorm", n, config.learning_rate)
        self.last_layer: list = []  # the model's last shared layer (bind)

    def state(self):
        return {"weights": self.w, "initial_loss": self.initial, **self.adam.state()}

    def weight_vector(self, step=None):
        return self.alpha * self.w

    def bind(self, model):
        super().bind(model)
        self.last_layer = model.last_shared_variables()
        if not self.last_layer:
            raise ConfigError(
                f"training.weighting.type: gradnorm needs a last shared layer; the "
                f"{model.config.architecture.type} model has none"
            )

    def objectives(self, task_losses, presence, extra_loss, scale, ctx):
        out = super().objectives(task_losses, presence, extra_loss, scale, ctx)
        out["per_task"] = {n: scale(self.task_weights[n] * task_losses[n]) for n in self.names}
        return out

    def gradients(self, tape, objectives, groups, ctx):
        pieces = super().gradients(tape, objectives, groups, ctx)
        pieces["last"] = tf.stack(
            [flatten(gradient(tape, objectives["per_task"][n], self.last_layer)) for n in self.names]
        )  # [tasks, |W|]
        return pieces

    def combine(self, pieces, groups, ctx):
        last = pieces.pop("last") / tf.cast(ctx.loss_scale, tf.float32)
        finite = tf.convert_to_tensor(ctx.finite) & all_finite(last)
        self.update(tf.norm(last, axis=1), pieces["losses"], pieces["presence"], finite)
        return super().combine(pieces, groups, ctx)

    def update(self, grad_norms, losses, presence, finite) -> None:
        """One GradNorm step on the weights from |∇_W α_t L_t| [tasks] and the global losses [tasks]."""
        present = presence > 0
        initial = tf.where(present & (self.initial <= 0), losses, self.initial)
        count = tf.maximum(tf.reduce_sum(presence), 1.0)
        g = self.w * grad_norms
        g_mean = tf.reduce_sum(tf.where(present, g, 0.0)) / count
        rate = tf.where(present & (initial > 0), losses / tf.maximum(initial, EPS), 0.0)
        relative = rate / tf.maximum(tf.reduce_sum(rate) / count, EPS)
        target = tf.stop_gradient(g_mean * tf.pow(relative, self.config.alpha))
        grad = tf.where(present, tf.sign(g - target) * grad_norms, 0.0)  # ∂ Σ|G_t − target_t| / ∂w_t
        w = tf.maximum(self.adam.step(self.w.value, grad, finite), MIN_WEIGHT)
        w = w * len(self.names) / tf.reduce_sum(w)
        assign_if(finite, (self.w, w), (self.initial, initial))
