"""The interface every weighting implements: it owns the backward pass.

A step runs in two phases, so that gradient-based methods see global per-task gradients and the optimizer sees
gradients reduced exactly once:

1. On each replica: inside the step's tape, `objectives(...)` forms the scalar(s) the method differentiates (one
   total loss, or each task's loss); after it, `gradients(...)` differentiates them and returns the per-replica
   gradient *pieces*.
2. The trainer sums the pieces across replicas and workers (once), then `combine(...)` turns the global pieces into
   one gradient per variable, identical on every replica, which the optimizer applies without reducing again.

Loss scaling under mixed_float16: `scale` (the optimizer's `scale_loss`) is applied to every loss that is
differentiated; the optimizer unscales what `combine` returns, so `combine` must be homogeneous in its pieces.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

import tensorflow as tf


def gradient(tape, target, variables: list) -> list:
    """d target / d variables, with zeros (not None) for variables the target does not reach."""
    grads = tape.gradient(target, variables)
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]


@dataclass
class VariableGroups:
    """The trainable variables of a step, split for the weighting.

    `shared`: reached by every task (encoders, trunk, experts); `tasks`: {task: variables only it reaches (tower,
    head, its gate)}; `extra`: the weighting's own trainable variables.
    """

    shared: list
    tasks: dict[str, list]
    extra: list

    @property
    def all(self) -> list:
        """Every variable, in the order gradients are returned in: shared, then each task's, then extra."""
        return [*self.shared, *(v for vs in self.tasks.values() for v in vs), *self.extra]


class Weighting(abc.ABC):
    """Args:
        task_weights: {task: α_t} from `tasks[i].weight`.
        config: this weighting's own config.
        seed: `experiment.seed` (for methods that draw random numbers; draws depend on the seed and the step only).
    """

    persistent_tape = False  # true when `gradients` differentiates more than once

    def __init__(self, task_weights: dict[str, float], config, seed: int = 0):
        self.task_weights = dict(task_weights)
        self.config = config
        self.seed = seed

    @property
    def trainable_variables(self) -> list:
        """Extra variables the optimizer trains (e.g. learned uncertainties); none by default."""
        return []

    def weights(self) -> dict:
        """The current weight of each task (float32 scalars): logged as `train/weights/<task>` and used for the
        weighted eval loss."""
        return {name: tf.constant(w, tf.float32) for name, w in self.task_weights.items()}

    def total(self, task_losses: dict):
        """Σ_t w_t · L_t with the current weights."""
        weights = self.weights()
        return tf.add_n([weights[name] * loss for name, loss in task_losses.items()])

    @abc.abstractmethod
    def objectives(self, task_losses: dict, extra_loss, scale):
        """Phase 1a, on each replica, inside the step's tape: what will be differentiated.

        Args:
            task_losses: {task: this replica's share of L_t} (summed across replicas, the global L_t).
            extra_loss: this replica's share of the regularisation and auxiliary losses, or None.
            scale: the loss scaling function; apply it to every scalar returned.

        Returns:
            Any nest of scalars, handed to `gradients`.
        """

    @abc.abstractmethod
    def gradients(self, tape, objectives, groups: VariableGroups):
        """Phase 1b, on each replica, after the tape: differentiate `objectives`.

        Args:
            tape: the step's GradientTape (persistent when `persistent_tape`).
            groups: the step's VariableGroups.

        Returns:
            Gradient pieces (any nest of tensors), summed across replicas by the trainer.
        """

    def combine(self, pieces, groups: VariableGroups, step):
        """Phase 2, on the global pieces. Returns one gradient per variable of `groups.all`.

        Args:
            step: the optimizer's step counter (for seeded draws that replicas and resumed runs must agree on).
        """
        return pieces
