"""Homoscedastic uncertainty weighting: a learned log-variance per task.

Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh Losses for Scene Geometry and
Semantics", CVPR 2018.
"""

from __future__ import annotations

from typing import Literal

import keras
import numpy as np
import tensorflow as tf
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.weightings.base import LossWeighting, stack_tasks


@WEIGHTINGS.register("uncertainty")
class UncertaintyWeighting(LossWeighting):
    """Each task t has a learned s_t = log σ_t², trained by the optimizer with the model. The objective is

        Σ_t α_t (c_t · exp(−s_t) · L_t + s_t / 2)

    with c_t = 1/2 for regression tasks (a Gaussian likelihood) and 1 for classification (a scaled softmax). The
    objective is least where c_t·exp(−s_t)·L_t = 1/2, so the weight c_t·exp(−s_t) settles at 1/(2 L_t) in both
    forms (s_t itself at log L_t for regression, log 2 L_t for classification). The s_t/2 term counts only when
    the task has labels in the batch (missing labels). The logged weight of a task is α_t · c_t · exp(−s_t).
    """

    class Config(StrictModel):
        type: Literal["uncertainty"] = Field(
            "uncertainty",
            description="Kendall et al. 2018: a learned log-variance s_t per task, trained with the model; objective Σ "
            "α_t (c_t e^{−s_t} L_t + s_t/2), c_t = ½ for regression, 1 for classification; one backward "
            "pass",
        )
        form: Literal["auto", "regression", "classification"] = Field(
            "auto",
            description="c_t: `regression` (½) or `classification` (1); `auto`: the regression form for regression "
            "tasks, the classification form otherwise",
        )
        init: float = Field(0.0, description="initial log-variance s_t")

    def __init__(self, task_weights, config, seed=0, tasks=(), steps_per_epoch=1):
        super().__init__(task_weights, config, seed, tasks, steps_per_epoch)
        form = config.form

        def coefficient(name):
            regression = self.kinds.get(name) == "regression" if form == "auto" else form == "regression"
            return 0.5 if regression else 1.0

        self.coefficients = tf.constant([coefficient(n) for n in self.names], tf.float32)
        self.log_variance = keras.Variable(
            np.full(len(self.names), config.init, np.float32), trainable=True, name="uncertainty_log_variance"
        )

    @property
    def trainable_variables(self):
        return [self.log_variance]

    def state(self):
        return {"log_variance": self.log_variance}

    def weight_vector(self, step=None):
        return self.alpha * self.coefficients * tf.exp(-tf.cast(self.log_variance, tf.float32))

    def extra_objective(self, presence, ctx):
        p = stack_tasks(presence, self.names)
        return tf.reduce_sum(self.alpha * p * 0.5 * tf.cast(self.log_variance, tf.float32))
