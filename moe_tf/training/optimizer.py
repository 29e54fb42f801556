"""Keras 3 optimizer and learning-rate schedule from the `training.optimizer` config."""

from __future__ import annotations

import keras


def build_schedule(cfg, total_steps: int):
    """Constant, cosine or exponential decay, each with an optional linear warm-up."""
    s = cfg.schedule
    lr = cfg.learning_rate
    decay_steps = s.decay_steps or max(total_steps - s.warmup_steps, 1)
    if s.type == "cosine":
        if s.warmup_steps:
            return keras.optimizers.schedules.CosineDecay(
                0.0, decay_steps, alpha=s.alpha, warmup_target=lr, warmup_steps=s.warmup_steps)
        return keras.optimizers.schedules.CosineDecay(lr, decay_steps, alpha=s.alpha)
    if s.type == "exponential":
        schedule = keras.optimizers.schedules.ExponentialDecay(lr, decay_steps, s.decay_rate)
    else:
        schedule = None
    if s.warmup_steps:
        return Warmup(lr, s.warmup_steps, schedule)
    return schedule or lr


@keras.saving.register_keras_serializable(package="moe_tf")
class Warmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then `after` (a schedule, or constant `peak`)."""

    def __init__(self, peak, warmup_steps, after=None):
        self.peak = peak
        self.warmup_steps = warmup_steps
        self.after = after

    def __call__(self, step):
        step = keras.ops.cast(step, "float32")
        warm = self.peak * (step + 1.0) / self.warmup_steps
        later = self.after(step - self.warmup_steps) if self.after is not None else self.peak
        return keras.ops.where(step < self.warmup_steps, warm, later)

    def get_config(self):
        after = keras.optimizers.schedules.serialize(self.after) if self.after is not None else None
        return {"peak": self.peak, "warmup_steps": self.warmup_steps, "after": after}


def build_optimizer(cfg, total_steps: int, mixed_precision: str):
    """Args: `training.optimizer`, the total step count (for decay), the mixed precision policy name."""
    lr = build_schedule(cfg, total_steps)
    if cfg.type == "adam":
        opt = keras.optimizers.Adam(lr)
    elif cfg.type == "adamw":
        opt = keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay or 0.004)
    elif cfg.type == "sgd":
        opt = keras.optimizers.SGD(lr, momentum=cfg.momentum)
    else:
        opt = keras.optimizers.RMSprop(lr, momentum=cfg.momentum)
    if mixed_precision == "mixed_float16":
        opt = keras.optimizers.LossScaleOptimizer(opt)
    return opt
