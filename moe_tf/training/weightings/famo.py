"""FAMO: fast adaptive multitask optimisation, balancing the rate at which each task's log-loss falls at O(1) cost
per step.

Liu, Liu, Jin, Stone and Liu, "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import tensorflow as tf
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.weightings.adam import VectorAdam
from moe_tf.training.weightings.base import LossWeighting, assign_if, stack_tasks, state_variable

LOSS_FLOOR = 1e-8  # the paper's ε under the log


@WEIGHTINGS.register("famo")
class FAMO(LossWeighting):
    """With z = softmax(ξ) over the tasks, the step descends Σ_t z_t log L_t / c (c = Σ_t z_t / L_t), i.e. the
    task weights are w_t = T · α_t · (z_t / L_t) / Σ_s (z_s / L_s), computed from the *global* losses of the
    step (summed across replicas before the backward pass) and rescaled to sum to the number of tasks.

    After the step, ξ takes an Adam step (`learning_rate`, `weight_decay` γ) along
    ∂z/∂ξ · (log L_t(before) − log L_t(after)), so tasks whose log-loss fell less gain weight. "After" is the
    loss of the next step, on its batch (the paper's code runs an extra forward pass on the same batch; this
    saves it). Tasks without labels in a step keep their weight out of the normalisation and the update.
    """

    reduces_in_backward = True

    class Config(StrictModel):
        type: Literal["famo"] = Field(
            "famo",
            description="Liu et al. 2023: descends Σ z_t log L_t with z = softmax(ξ); ξ takes an Adam step on each "
            "task's log-loss decrease, measured against the next step's loss on its batch; one backward "
            "pass",
        )
        learning_rate: float = Field(0.025, gt=0.0, description="Adam step size for the logits ξ")
        weight_decay: float = Field(1e-3, ge=0.0, description="γ: L2 decay on ξ")

    def __init__(self, task_weights, config, seed=0, tasks=(), steps_per_epoch=1):
        super().__init__(task_weights, config, seed, tasks, steps_per_epoch)
        n = len(self.names)
        self.logits = state_variable("famo_logits", np.zeros(n))
        self.previous = state_variable("famo_previous_loss", np.zeros(n))  # the last step's loss (0: no labels)
        self.adam = VectorAdam("famo", n, config.learning_rate, config.weight_decay)

    def state(self):
        return {"logits": self.logits, "previous_loss": self.previous, **self.adam.state()}

    def famo_weights(self, losses, presence):
        """[tasks]: the weights of a step from its global losses and presence."""
        z = tf.nn.softmax(self.logits)
        u = tf.where(presence > 0, z / (losses + LOSS_FLOOR), 0.0)
        count = tf.maximum(tf.reduce_sum(presence), 1.0)
        return self.alpha * count * u / tf.maximum(tf.reduce_sum(u), 1e-30)

    def weight_vector(self, step=None):
        """Outside a step (the eval loss): the balance z without the loss normalisation."""
        return self.alpha * len(self.names) * tf.nn.softmax(self.logits)

    def step_weights(self, task_losses, presence, ctx):
        losses = ctx.all_reduce(tf.stop_gradient(stack_tasks(task_losses, self.names)))
        return self.famo_weights(losses, ctx.all_reduce(stack_tasks(presence, self.names)))

    def observe(self, losses, presence, finite, ctx):
        both = (presence > 0) & (self.previous > 0)
        delta = tf.where(both, tf.math.log(self.previous + LOSS_FLOOR) - tf.math.log(losses + LOSS_FLOOR), 0.0)
        z = tf.nn.softmax(self.logits)
        grad = z * (delta - tf.reduce_sum(z * delta))  # (∂z/∂ξ)ᵀ δ
        # no step before there is a loss decrease to measure (the first step, or tasks without labels)
        self.logits.assign(self.adam.step(self.logits.value, grad, finite & tf.reduce_any(both)))
        assign_if(finite, (self.previous, tf.where(presence > 0, losses, 0.0)))
