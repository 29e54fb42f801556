"""The non-finite guard (`training.nonfinite`): a step whose global task losses or gradients hold a NaN or an Inf
is never applied, under every strategy and weighting.

The check runs inside the step on values already summed across replicas and workers, so every replica takes the
same decision. A skipped step still counts as a step (the optimizer's step counter advances, so the input pipeline
and exact resume stay aligned) and is left out of the logged training statistics. Then, by `action`:

- `skip`: nothing more; `train/nonfinite_steps` counts them and the progress output warns;
- `reduce_lr`: also multiply the learning rate by `lr_factor` (kept in checkpoints);
- `stop`: end the run with an error naming the task, the step and the last checkpoint.

`skip` and `reduce_lr` stop the same way after `max_consecutive` non-finite steps in a row (a diverged run).
Under mixed_float16 a non-finite *gradient* with finite losses is the loss scale overflowing, which the
LossScaleOptimizer handles (halves the scale, skips the step); the guard counts only non-finite losses there.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from moe_tf.errors import MoeTfError


class NonfiniteError(MoeTfError):
    """The run stopped on a non-finite step; `step` says where, the message what."""

    def __init__(self, message: str, step: int):
        super().__init__(message)
        self.step = step


class NonfiniteGuard:
    """State and bookkeeping of the guard.

    Args:
        config: `training.nonfinite`.
        names: the task names, in the order of the step's loss vector (then one entry for the other losses).
        lr_scale: the variable the learning rate is multiplied by (`reduce_lr` lowers it; see
            `ScaledLearningRate`), or None (no optimizer, e.g. evaluation).
    """

    def __init__(self, config, names, lr_scale=None):
        self.config = config
        self.names = list(names)
        self.lr_scale = lr_scale
        self.total = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_total")
        self.consecutive = tf.Variable(0, dtype=tf.int64, trainable=False, name="nonfinite_consecutive")
        # The first non-finite step since the host last looked, and its losses (tasks, then the other losses).
        self.first_step = tf.Variable(-1, dtype=tf.int64, trainable=False, name="nonfinite_first_step")
        self.first_values = tf.Variable(tf.zeros([len(self.names) + 1]), trainable=False, name="nonfinite_first_values")
        self.halt = tf.Variable(False, trainable=False, name="nonfinite_halt")
        self._reported = 0
        self._reduces_lr = lr_scale is not None and config.action == "reduce_lr"

    def state(self) -> dict:
        """What checkpoints keep (exact resume): the counters and the learning-rate factor."""
        state = {"total": self.total, "consecutive": self.consecutive}
        if self.lr_scale is not None:
            state["lr_scale"] = self.lr_scale
        return state

    def record(self, bad, values, step) -> None:
        """In the step (cross-replica context): `bad` is this step's verdict, `values` its global losses, `step`
        its number (1-based: the optimizer's counter after the step)."""
        cfg = self.config
        self.total.assign_add(tf.cast(bad, tf.int64))
        consecutive = tf.where(bad, self.consecutive + 1, 0)
        self.consecutive.assign(consecutive)
        new = bad & (self.first_step < 0)
        self.first_step.assign(tf.where(new, tf.cast(step, tf.int64), self.first_step))
        self.first_values.assign(tf.where(new, values, self.first_values))
        if self._reduces_lr:
            self.lr_scale.assign(tf.where(bad, self.lr_scale * cfg.lr_factor, self.lr_scale))
        stop = cfg.action == "stop"
        self.halt.assign(self.halt | (bad & (tf.constant(stop) | (consecutive >= cfg.max_consecutive))))

    def report(self) -> dict | None:
        """On the host, at a log step: the non-finite steps since the last report ({"count", "total", "step" of the
        first, "what" was not finite, "lr_scale" under reduce_lr}), or None. Resets the first step."""
        total = int(self.total.numpy())
        first = int(self.first_step.numpy())
        if first < 0:
            return None
        report = {
            "count": total - self._reported,
            "total": total,
            "step": first,
            "what": self.describe(self.first_values.numpy()),
            "lr_scale": float(np.asarray(self.lr_scale.numpy())) if self._reduces_lr else None,
        }
        self._reported = total
        self.first_step.assign(-1)
        return report

    def restored(self) -> None:
        """After a checkpoint restore: counts already reported are those the checkpoint holds."""
        self._reported = int(self.total.numpy())

    def describe(self, values) -> str:
        """Which losses were non-finite, e.g. "the loss of task 'digit' is nan"."""
        bad = [f"task {n!r} is {_word(v)}" for n, v in zip(self.names, values) if not np.isfinite(v)]
        if not np.isfinite(values[-1]):
            bad.append(f"the regularisation/auxiliary loss is {_word(values[-1])}")
        if not bad:
            return "the losses were finite but a gradient was not"
        return "the loss of " + ", ".join(bad)

    def stop_error(self, checkpoint: str | None) -> NonfiniteError:
        """The error that ends the run when `halt` is set."""
        step = int(self.first_step.numpy())
        what = self.describe(self.first_values.numpy())
        cfg = self.config
        if cfg.action == "stop":
            why = f"training.nonfinite.action is stop: at step {step} {what}"
        else:
            why = (
                f"{cfg.max_consecutive} non-finite steps in a row (training.nonfinite.max_consecutive), "
                f"the last at step {step}: {what}"
            )
        where = f"the last good checkpoint is {checkpoint}" if checkpoint else "no checkpoint was written yet"
        return NonfiniteError(
            f"{why}; the update was not applied and {where}. Lower the learning rate, check the "
            f"data of that task, or set training.nonfinite.action: skip",
            step,
        )


def nonfinite_variables(variables) -> list[str]:
    """The paths of the floating-point variables holding a NaN or an Inf (what checkpoints and exports refuse)."""
    bad = []
    for variable in variables:
        value = np.asarray(variable.numpy())  # one copy to the host per variable
        if np.issubdtype(value.dtype, np.floating) and not np.all(np.isfinite(value)):
            bad.append(variable.path)
    return bad


def _word(value) -> str:
    return "nan" if np.isnan(value) else ("+inf" if value > 0 else "-inf")


@keras.saving.register_keras_serializable(package="moe_tf")
class ScaledLearningRate(keras.optimizers.schedules.LearningRateSchedule):
    """A learning rate (number or schedule) times a variable factor: `reduce_lr` lowers the factor."""

    def __init__(self, base, scale):
        self.base = base
        self.scale = scale

    def __call__(self, step):
        base = self.base(step) if callable(self.base) else self.base
        return keras.ops.cast(base, "float32") * keras.ops.cast(self.scale, "float32")

    def get_config(self):
        base = self.base if not callable(self.base) else keras.optimizers.schedules.serialize(self.base)
        return {"base": base, "scale": float(keras.ops.convert_to_numpy(self.scale))}


def apply_if(optimizer, condition, grads, variables) -> None:
    """`optimizer.apply_gradients` where `condition` (identical on every replica) holds, in replica context.

    A `tf.cond` whose branch calls `merge_call` (as Keras' update does under MirroredStrategy and multi-worker) is not
    allowed in replica context, so there the condition is taken in cross-replica context, as Keras'
    LossScaleOptimizer does.
    """
    pairs = list(zip(grads, variables))

    def apply():
        optimizer.apply_gradients(pairs)
        return tf.constant(True)

    if tf.__internal__.distribute.strategy_supports_no_merge_call():
        tf.cond(condition, apply, lambda: tf.constant(False))
        return

    def cross_replica(distribution, condition, grads):
        first = distribution.experimental_local_results(condition)[0]

        def apply_each():
            distribution.extended.call_for_each_replica(
                lambda g: optimizer.apply_gradients(list(zip(g, variables))), args=(grads,)
            )
            return tf.constant(True)

        tf.cond(first, apply_each, lambda: tf.constant(False))

    tf.distribute.get_replica_context().merge_call(cross_replica, args=(condition, list(grads)))
