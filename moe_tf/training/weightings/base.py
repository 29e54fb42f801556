"""The interface every weighting implements: it owns the backward pass.

A step runs in two phases, so that gradient-based methods see global per-task gradients and the optimizer sees
gradients reduced exactly once:

1. On each replica: inside the step's tape, `objectives(...)` forms the scalar(s) the method differentiates (one
   total loss, or each task's loss); after it, `gradients(...)` differentiates them and returns the per-replica
   gradient *pieces*.
2. The trainer sums the pieces across replicas and workers (once), then `combine(...)` turns the global pieces into
   one gradient per variable, identical on every replica, which the optimizer applies without reducing again.
   Methods with state (loss histories, learned weights) update it here, from global values only, so every replica
   and every strategy holds the same state.

A method that needs a global value *before* its backward pass (FAMO's loss normalisation, MGDA-UB's Gram matrix)
sets `reduces_in_backward` and sums it in phase 1 with `ctx.all_reduce` (under several replicas phase 1 is then not
XLA-compiled: XLA cannot hold the cross-replica call).

Loss scaling under mixed_float16: `scale` (the optimizer's `scale_loss`) is applied to every loss that is
differentiated; gradient-based methods divide their pieces by `ctx.loss_scale` before any surgery and multiply the
result back, and the LossScaleOptimizer unscales and skips non-finite steps as for `fixed`. State is not updated
on a non-finite step (`ctx.finite`).
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from moe_tf.errors import ConfigError
from moe_tf.registry import WEIGHTINGS
from moe_tf.training.vectors import flatten, unflatten

EPS = 1e-12


def gradient(tape, target, variables: list, output_gradients=None) -> list:
    """d target / d variables, with zeros (not None) for variables the target does not reach. With a list of
    targets and `output_gradients` (one weight each), the gradient of their weighted sum in one backward pass."""
    grads = tape.gradient(target, variables, output_gradients=output_gradients)
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]


def state_variable(name: str, value, dtype="float32"):
    """A non-trainable variable of a weighting's state (checkpointed). Every replica computes the same new value
    from global quantities, so the first replica's assignment is kept (no reduction)."""
    return keras.Variable(np.asarray(value), dtype=dtype, trainable=False, name=name, aggregation="only_first_replica")


def all_finite(tensors) -> tf.Tensor:
    """True when every element of a nest of tensors (None leaves skipped) is finite."""
    flat = [tf.reduce_all(tf.math.is_finite(tf.cast(t, tf.float32))) for t in tf.nest.flatten(tensors) if t is not None]
    return tf.reduce_all(tf.stack(flat)) if flat else tf.constant(True)


def assign_if(condition, *updates) -> None:
    """Assigns each (variable, value) pair where `condition` holds, else keeps the old value (a skipped
    non-finite step)."""
    for var, value in updates:
        var.assign(tf.where(condition, tf.cast(value, var.dtype), var.value))


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


@dataclass
class StepContext:
    """What a step tells the weighting.

    step: the optimizer's step counter before this step (seeded draws depend on it; it is checkpointed).
    loss_scale: the mixed_float16 loss scale (1 otherwise).
    all_reduce: sums a nest of tensors across replicas and workers (identity with one replica).
    mixed_float16: true when losses are scaled (a scaled gradient may overflow).
    representation: the model's shared representation in this forward pass (when `needs_representation`).
    finite: phase 2 only: true when the step's global task losses and gradient pieces are all finite. A step that
        is not finite is not applied (the non-finite guard; the loss scale under mixed_float16), so a method's state
        must not change either: update it with `assign_if(ctx.finite & ..., ...)`.
    """

    step: tf.Tensor
    loss_scale: tf.Tensor
    all_reduce: Callable
    mixed_float16: bool = False
    representation: tf.Tensor | None = None
    finite: tf.Tensor | bool = True


class Weighting(abc.ABC):
    """Args:
    task_weights: {task: α_t} from `tasks[i].weight`; every method multiplies its own weights by α_t.
    config: this weighting's own config.
    seed: `experiment.seed` (for methods that draw random numbers; draws depend on the seed and the step only).
    tasks: the resolved tasks (their `kind`), for methods whose form depends on it.
    steps_per_epoch: for methods with per-epoch windows.
    """

    persistent_tape = False  # true when `gradients` differentiates more than once
    reduces_in_backward = False  # true when phase 1 calls `ctx.all_reduce`
    needs_representation = False  # true when the model must return its shared representation (MGDA-UB)
    gradient_based = False  # needs variables every task shares
    task_gradients = False  # combines the tasks' separate gradients by their directions (TaskGradientWeighting)

    def __init__(self, task_weights: dict[str, float], config, seed: int = 0, tasks=(), steps_per_epoch: int = 1):
        self.task_weights = dict(task_weights)
        self.names = list(self.task_weights)
        self.alpha = tf.constant([self.task_weights[n] for n in self.names], tf.float32)  # [tasks]
        self.config = config
        self.seed = seed
        self.kinds = {t.name: t.kind for t in tasks}

    def bind(self, model) -> None:
        """Checks that the method can train `model` (a ConfigError naming `training.weighting` otherwise) and keeps
        what it needs of it."""
        arch = model.config.architecture.type
        if self.gradient_based and not model.variable_groups()[0]:
            usable = ", ".join(key for key, cls in WEIGHTINGS.items() if not cls.gradient_based)
            raise ConfigError(
                f"training.weighting.type: {self.config.type} combines the tasks' gradients on shared "
                f"variables, and the {arch} model shares none; use a loss-based weighting ({usable})"
            )
        if self.needs_representation and not model.has_representation():
            raise ConfigError(
                f"training.weighting.upper_bound: the {arch} model with experts on the raw inputs has "
                "no single shared representation; set upper_bound: false"
            )

    @property
    def trainable_variables(self) -> list:
        """Extra variables the optimizer trains (e.g. learned uncertainties); none by default."""
        return []

    def state(self) -> dict:
        """{name: variable} of the method's state, saved in checkpoints (trainable ones included)."""
        return {}

    def weight_vector(self, step=None) -> tf.Tensor:
        """[tasks] float32: the current weight of each task, in task order (α_t by default)."""
        return self.alpha

    def weights(self, step=None) -> dict:
        """{task: float32 scalar}: logged as `train/weights/<task>` and used for the weighted eval loss.

        Args:
            step: the step counter (RLW draws its weights from it); None outside training.
        """
        w = self.weight_vector(step)
        return {name: w[i] for i, name in enumerate(self.names)}

    def weighted_sum(self, weights, task_losses: dict):
        """Σ_t w_t · L_t for weights [tasks] in task order."""
        return tf.add_n([weights[i] * task_losses[name] for i, name in enumerate(self.names)])

    @abc.abstractmethod
    def objectives(self, task_losses: dict, presence: dict, extra_loss, scale, ctx: StepContext):
        """Phase 1a, on each replica, inside the step's tape: what will be differentiated.

        Args:
            task_losses: {task: this replica's share of L_t} (summed across replicas, the global L_t).
            presence: {task: this replica's share of 1[the global batch has labels of t]} (sums to 1 or 0).
            extra_loss: this replica's share of the regularisation and auxiliary losses, or None.
            scale: the loss scaling function; apply it to every scalar differentiated.

        Returns:
            A dict handed to `gradients`; its "weights" [tasks] are the weights the step reports (logged, and the
            reported loss Σ_t w_t L_t).
        """

    @abc.abstractmethod
    def gradients(self, tape, objectives, groups: VariableGroups, ctx: StepContext):
        """Phase 1b, on each replica, after the tape: differentiate `objectives`.

        Args:
            tape: the step's GradientTape (persistent when `persistent_tape`).
            groups: the step's VariableGroups.

        Returns:
            Gradient pieces (any nest of tensors), summed across replicas by the trainer.
        """

    def combine(self, pieces, groups: VariableGroups, ctx: StepContext):
        """Phase 2, on the global pieces. Returns one gradient per variable of `groups.all`."""
        return pieces


def stack_tasks(values: dict, names: list) -> tf.Tensor:
    """{task: scalar} → [tasks] float32 in `names` order."""
    return tf.stack([tf.cast(values[n], tf.float32) for n in names])


class LossWeighting(Weighting):
    """A method that weighs the task losses and differentiates their sum once (GradNorm among them, though it also
    measures gradients). Subclasses give `weight_vector` and, for state, `observe`."""

    def extra_objective(self, presence, ctx):
        """A method's own term of the objective (this replica's share), e.g. the uncertainties' log σ; or None."""
        return None

    def step_weights(self, task_losses: dict, presence: dict, ctx) -> tf.Tensor:
        """[tasks]: the weights of this step (phase 1, on each replica; must agree across replicas)."""
        return self.weight_vector(ctx.step)

    def objectives(self, task_losses, presence, extra_loss, scale, ctx):
        w = self.step_weights(task_losses, presence, ctx)
        total = self.weighted_sum(w, task_losses)
        for term in (extra_loss, self.extra_objective(presence, ctx)):
            if term is not None:
                total = total + term
        return {
            "total": scale(total),
            "weights": tf.stop_gradient(w),
            "losses": stack_tasks(task_losses, self.names),
            "presence": stack_tasks(presence, self.names),
        }

    def gradients(self, tape, objectives, groups, ctx):
        return {
            "grads": gradient(tape, objectives["total"], groups.all),
            "losses": tf.stop_gradient(objectives["losses"]),
            "presence": objectives["presence"],
        }

    def combine(self, pieces, groups, ctx):
        self.observe(pieces["losses"], pieces["presence"], tf.convert_to_tensor(ctx.finite), ctx)
        return pieces["grads"]

    def observe(self, losses, presence, finite, ctx) -> None:
        """Updates the state from the step's global losses [tasks] and presence [tasks] (0 or 1); only where
        `finite` (use `assign_if`)."""
        return None


class TaskGradientWeighting(Weighting):
    """A method that combines each task's separate gradient on the shared variables (`task_gradients`).

    Phase 1 differentiates α_t L_t for every task on the shared variables and the task's own ones; phase 2 stacks
    the global per-task gradients [tasks, shared params], unscales them, and `surgery` turns them into one shared
    gradient; each task's own variables take its gradient times `surgery`'s multiplier (1 by default).
    """

    persistent_tape = True
    gradient_based = True
    task_gradients = True

    def objectives(self, task_losses, presence, extra_loss, scale, ctx):
        return {
            "tasks": {n: scale(self.task_weights[n] * task_losses[n]) for n in self.names},
            "weights": self.weight_vector(ctx.step),
            "extra": None if extra_loss is None else scale(extra_loss),
            "losses": stack_tasks(task_losses, self.names),
            "presence": stack_tasks(presence, self.names),
        }

    def gradients(self, tape, objectives, groups, ctx):
        shared, own = [], {}
        for name in self.names:
            grads = gradient(tape, objectives["tasks"][name], groups.shared + groups.tasks[name])
            shared.append(grads[: len(groups.shared)])
            own[name] = grads[len(groups.shared) :]
        extra = None if objectives["extra"] is None else gradient(tape, objectives["extra"], groups.all)
        return {
            "shared": shared,
            "own": own,
            "extra": extra,
            "losses": tf.stop_gradient(objectives["losses"]),
            "presence": objectives["presence"],
        }

    @abc.abstractmethod
    def surgery(self, grads, losses, presence, finite, ctx):
        """Args: grads [tasks, shared params] (global, unscaled, each of α_t L_t); losses and presence [tasks].

        Returns: (shared gradient [shared params], multipliers [tasks] for the tasks' own gradients).
        """

    def combine(self, pieces, groups, ctx):
        scale = tf.cast(ctx.loss_scale, tf.float32)
        flat = tf.stack([flatten(per_task) for per_task in pieces["shared"]]) / scale  # [tasks, shared params]
        summed, multipliers = self.surgery(
            flat, pieces["losses"], pieces["presence"], tf.convert_to_tensor(ctx.finite), ctx
        )
        shared = unflatten(summed * scale, groups.shared)
        own = [g * tf.cast(multipliers[i], g.dtype) for i, name in enumerate(self.names) for g in pieces["own"][name]]
        grads = [*shared, *own, *(tf.zeros_like(v) for v in groups.extra)]
        if pieces["extra"] is not None:
            grads = [g + e for g, e in zip(grads, pieces["extra"])]
        return grads
