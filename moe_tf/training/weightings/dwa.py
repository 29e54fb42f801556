"""Dynamic weight average: weigh each task by how slowly its loss has been falling.

Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention", CVPR 2019.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import tensorflow as tf
from pydantic import Field, field_validator

from moe_tf.config.base import StrictModel
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.weightings.base import EPS, LossWeighting, assign_if, state_variable


@WEIGHTINGS.register("dwa")
class DynamicWeightAverage(LossWeighting):
    """w_t = T · softmax(r / temperature)_t · α_t, where r_t = L̄_t(k−1) / L̄_t(k−2) is the ratio of the task's
    mean training loss over the last two windows (an epoch by default, as in the paper; `window` steps
    otherwise). Until two windows have passed the weights are α_t. Window means count only the steps where the
    task had labels; a task without labels in either window gets r = 1.
    """

    class Config(StrictModel):
        type: Literal["dwa"] = Field(
            "dwa",
            description="Liu et al. 2019: w = T·softmax(r/temperature), r_t = ratio of the task's mean loss over the "
            "last two windows; α_t until two windows have passed; one backward pass",
        )
        temperature: float = Field(2.0, gt=0.0, description="softmax temperature of the loss ratios")
        window: Literal["epoch"] | int = Field("epoch", description="steps per loss average: 'epoch' or an int >= 1")

        @field_validator("window")
        @classmethod
        def _epoch_or_positive(cls, v):
            if v != "epoch" and v < 1:
                raise ValueError(f"expected 'epoch' or an int >= 1, got {v!r}")
            return v

    def __init__(self, task_weights, config, seed=0, tasks=(), steps_per_epoch=1):
        super().__init__(task_weights, config, seed, tasks, steps_per_epoch)
        self.window = steps_per_epoch if config.window == "epoch" else config.window
        n = len(self.names)
        self.loss_sum = state_variable("dwa_loss_sum", np.zeros(n))  # this window's Σ L_t over labelled steps
        self.present = state_variable("dwa_present", np.zeros(n))  # this window's steps with labels of t
        self.history = state_variable("dwa_history", np.zeros((2, n)))  # [previous, last] window means
        self.windows = state_variable("dwa_windows", 0, "int64")  # complete windows so far

    def state(self):
        return {"loss_sum": self.loss_sum, "present": self.present, "history": self.history, "windows": self.windows}

    def weight_vector(self, step=None):
        previous, last = self.history[0], self.history[1]
        valid = (previous > EPS) & (last > EPS)
        ratio = tf.where(valid, last / tf.where(valid, previous, 1.0), 1.0)
        dynamic = len(self.names) * tf.nn.softmax(ratio / self.config.temperature)
        return self.alpha * tf.where(self.windows >= 2, dynamic, tf.ones_like(dynamic))

    def observe(self, losses, presence, finite, ctx):
        loss_sum = self.loss_sum + losses * presence
        present = self.present + presence
        closes = tf.equal((tf.cast(ctx.step, tf.int64) + 1) % self.window, 0)  # this step ends a window
        mean = tf.where(present > 0, loss_sum / tf.maximum(present, 1.0), 0.0)
        history = tf.where(closes, tf.stack([self.history[1], mean]), self.history)
        assign_if(
            finite,
            (self.history, history),
            (self.windows, self.windows + tf.cast(closes, tf.int64)),
            (self.loss_sum, tf.where(closes, tf.zeros_like(loss_sum), loss_sum)),
            (self.present, tf.where(closes, tf.zeros_like(present), present)),
        )
