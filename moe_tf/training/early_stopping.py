"""Early stopping on a named eval metric, with its state kept in variables so a resumed run continues it."""

from __future__ import annotations

import math

import tensorflow as tf

from moe_tf.config.schema import lower_is_better


def lookup_metric(summary: dict, name: str) -> float:
    """`eval/loss` → summary["loss"]; `eval/<task>/<metric>` → summary["tasks"][task][metric]."""
    parts = name.split("/")
    if parts[1:] == ["loss"]:
        return float(summary["loss"])
    return float(summary["tasks"][parts[1]][parts[2]])


class EarlyStopping:
    """Args: the `training.early_stopping` config. `update` returns (improved, stop)."""

    def __init__(self, config):
        self.config = config
        self.monitor = config.monitor
        mode = config.mode
        if mode == "auto":
            mode = "min" if lower_is_better(self.monitor or "loss") else "max"
        self.sign = 1.0 if mode == "max" else -1.0
        self.best = tf.Variable(-math.inf, dtype=tf.float64, trainable=False, name="early_stopping_best")
        self.bad_evals = tf.Variable(0, dtype=tf.int64, trainable=False, name="early_stopping_bad_evals")

    def update(self, summary: dict) -> tuple[bool, bool]:
        if self.monitor is None:
            return False, False
        value = self.sign * lookup_metric(summary, self.monitor)
        if value > float(self.best.numpy()) + self.config.min_delta:
            self.best.assign(value)
            self.bad_evals.assign(0)
            return True, False
        self.bad_evals.assign_add(1)
        return False, int(self.bad_evals.numpy()) >= self.config.patience

    @property
    def best_value(self) -> float | None:
        best = float(self.best.numpy())
        return None if math.isinf(best) else self.sign * best
