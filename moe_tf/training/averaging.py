"""An exponential moving average of the model's trainable weights and batch-norm moving statistics
(`training.ema_momentum`).

After every step the optimizer applies, each average moves toward its variable: a ← m·a + (1 − m)·w (the first
applied step copies the weights, as Keras' `use_ema` does). Training always updates the raw weights; evaluation
during training (and so early stopping), the final test evaluation, the export, `evaluate`, `predict`, `--init-from`
and a distillation teacher all use the averages. A checkpoint holds both: the raw weights under `model/` (what
`--resume` continues from) and the averages under `average/`, keyed by the same variable paths.

The average smooths out the last steps' noise without another pass over the data; see benchmarks/RESULTS.md for
what it did to the text benchmarks (Polyak & Juditsky 1992; Izmailov et al. 2018 for the weight-space view).
"""

from __future__ import annotations

import contextlib
import math

import tensorflow as tf

from moe_tf.models.normalization import moving_statistics
from moe_tf.training.checkpoints import model_variables
from moe_tf.training.optimizer import tf_variable


class WeightAverage:
    """The averages of `model`'s trainable variables and batch-norm moving statistics (the averaged weights are
    evaluated with averaged statistics, as timm's ModelEmaV2 does), created under the current strategy's scope.

    Args:
        model: the built MultiTaskModel.
        strategy: the tf.distribute strategy its variables live under.
        momentum: m in a ← m·a + (1 − m)·w, in (0, 1); 0.99 averages over roughly the last 100 steps.
    """

    def __init__(self, model, strategy, momentum: float):
        self.strategy = strategy
        self.momentum = momentum
        averaged = {id(v) for v in [*model.trainable_variables, *moving_statistics(model)]}
        self.variables = {path: v for path, v in model_variables(model).items() if id(v) in averaged}
        with strategy.scope():
            self.averages = {
                path: tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name=f"average/{path}")
                for path, v in self.variables.items()
            }
            # Applied updates so far: the first one copies the weights (an average of zeros would lag for long).
            self.updates = tf.Variable(
                0,
                dtype=tf.int64,
                trainable=False,
                name="average_updates",
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
        self._swap = tf.function(self._swap_values, autograph=False)

    def state(self) -> dict:
        """What a checkpoint holds: {"average": {variable path: average}, "average_updates": counter}."""
        return {"average": dict(self.averages), "average_updates": self.updates}

    def update(self, applied) -> None:
        """Moves the averages toward the weights if `applied` (a boolean tensor: the optimizer updated them this
        step); cross-replica context, inside the training step's graph."""

        def move():
            m = tf.where(self.updates > 0, self.momentum, 0.0)
            for path, variable in self.variables.items():
                self.strategy.extended.update(self.averages[path], _toward, args=(tf_variable(variable), m))
            self.updates.assign_add(1)
            return tf.constant(True)

        tf.cond(applied, move, lambda: tf.constant(False))

    @contextlib.contextmanager
    def swapped(self):
        """Within the block the model holds the averages (and the averages the raw weights); swapped back after,
        also on an error."""
        self._swap()
        try:
            yield
        finally:
            self._swap()

    def install(self) -> None:
        """Sets the model's weights to the averages for good (after training: the test split, export)."""
        for path, variable in self.variables.items():
            variable.assign(self.averages[path])

    def _swap_values(self):
        for path, variable in self.variables.items():
            raw = tf.identity(tf_variable(variable))
            variable.assign(self.averages[path])
            self.averages[path].assign(raw)


def short_run_warning(momentum: float, steps: int) -> str | None:
    """A warning when a run of `steps` steps is too short for `momentum`: the first step copies the weights, so at
    the end the average still holds momentum^steps of the barely trained ones (None when that is below 5%)."""
    kept = momentum**steps
    if kept < 0.05:
        return None
    suggest = math.floor(0.01 ** (1.0 / steps) * 1000) / 1000  # keeps 1% or less of the first step's weights
    return (
        f"warning: training.ema_momentum {momentum} averages over about {1 / (1 - momentum):.0f} steps, and "
        f"this run trains {steps}: at its end the average (what evaluation, test and export use) still holds "
        f"{kept:.0%} of the first step's weights. Lower it (e.g. to {suggest}) or train longer"
    )


def _toward(average, variable, momentum):
    """a ← m·a + (1 − m)·w on one device's copies."""
    m = tf.cast(momentum, average.dtype)
    return average.assign(m * average + (1.0 - m) * tf.cast(variable, average.dtype))
