"""A learning rate per model part (`training.optimizer.parts`): e.g. a pretrained backbone's stems at a tenth of the
rate, or held still for the first steps while the new heads settle.

Keras optimizers have one learning rate. Every update they make is proportional to it (Adam's, SGD's with momentum,
RMSprop's and the decoupled weight decay alike), so a part at factor s is moved by s times the optimizer's step:
w ← w₀ + s·(w₁ − w₀), with w₀ the weights before the step and w₁ after it; s = 0 for the part's first
`frozen_steps` steps. The optimizer's moments see the part's gradients throughout, so they are warm when a frozen
part starts to move. Costs one copy of the part's weights per step.
"""

from __future__ import annotations

import tensorflow as tf

from moe_tf.errors import ConfigError
from moe_tf.training.optimizer import tf_variable


class PartRates:
    """The parts of `model` with their own rate (those of `parts` whose factor is not 1 or that freeze at the start).

    Args:
        parts: {part: PartOptimizerConfig} from `training.optimizer.parts`.
        model: the built MultiTaskModel (its `part_variables`).
        strategy: the tf.distribute strategy its variables live under.
    """

    def __init__(self, parts: dict, model, strategy):
        self.strategy = strategy
        self.groups = []
        for name, cfg in sorted(parts.items()):
            variables = model.part_variables(name)
            if not variables:
                raise ConfigError(
                    f"training.optimizer.parts.{name}: this model has no trainable {name} (its architecture has "
                    "none, or model.freeze lists them)"
                )
            if cfg.learning_rate_scale != 1.0 or cfg.frozen_steps:
                self.groups.append((name, variables, cfg.learning_rate_scale, cfg.frozen_steps))

    def __bool__(self) -> bool:
        return bool(self.groups)

    def describe(self) -> str:
        """One log line: each part's factor and freeze."""
        said = []
        for name, variables, scale, frozen in self.groups:
            text = f"{name} ×{scale:g}" + (f", still for the first {frozen} steps" if frozen else "")
            said.append(f"{text} ({len(variables)} variables)")
        return "learning rate per part: " + "; ".join(said)

    def before(self) -> list:
        """The parts' weights before the step (cross-replica context, inside the step's graph)."""
        return [[tf.identity(tf_variable(v)) for v in variables] for _, variables, _, _ in self.groups]

    def rescale(self, before: list, step) -> None:
        """Moves each part by its factor of the step just applied; `step`: the optimizer's step count before it."""
        for (_, variables, scale, frozen), saved in zip(self.groups, before):
            factor = tf.where(tf.cast(step, tf.int64) < frozen, 0.0, scale)
            for variable, w0 in zip(variables, saved):
                self.strategy.extended.update(tf_variable(variable), _scaled, args=(w0, factor))


def _scaled(variable, before, factor):
    """w ← w₀ + s·(w − w₀) on one device's copy."""
    return variable.assign(before + tf.cast(factor, variable.dtype) * (variable - before))
