"""The composition root: one place that turns a config into data, model, weighting and optimizer.

Training, evaluation, export, the tests and the benchmarks all build through `build_components` (or
`restore_components` for a finished run), so there is one build sequence: strategy → data → model → weighting →
optimizer → trainer or evaluator.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from moe_tf.data import TaskData, build_task_data
from moe_tf.models import build_model
from moe_tf.training.averaging import WeightAverage
from moe_tf.training.checkpoints import restore_for_inference
from moe_tf.training.distillation import build_distillation
from moe_tf.training.evaluator import Evaluator
from moe_tf.training.optimizer import build_optimizer
from moe_tf.training.trainer import Trainer, resolve_jit_compile, total_steps
from moe_tf.training.weightings import build_weighting


@dataclass
class Components:
    """What a run is made of. `optimizer` is None when built for inference."""

    config: object
    strategy: tf.distribute.Strategy
    data: TaskData
    model: object
    weighting: object
    optimizer: object | None
    lr_scale: object | None = None  # the learning-rate factor training.nonfinite.action: reduce_lr lowers
    distillation: object | None = None  # moe_tf.training.distillation.Distillation, with a teacher
    average: object | None = None  # moe_tf.training.averaging.WeightAverage (training.ema_momentum), training only

    def trainer(self, stop_request=None, profile=None) -> Trainer:
        """Args: stop_request: a moe_tf.training.signals.StopRequest (graceful stop on SIGINT/SIGTERM); profile: a
        moe_tf.training.profiling.ProfileWindow (`training.profile`)."""
        if self.optimizer is None:
            raise ValueError("these components were built for inference (training=False)")
        return Trainer(self.model, self.weighting, self.optimizer, self.strategy, self.data, self.config.training,
                       self.config.logging.gradient_stats_every, lr_scale=self.lr_scale, stop_request=stop_request,
                       distillation=self.distillation, profile=profile, average=self.average)

    def evaluator(self) -> Evaluator:
        jit = resolve_jit_compile(self.config.training.jit_compile, self.strategy)
        return Evaluator(self.model, self.strategy, self.data.tasks, self.data.features, jit)

    def evaluate(self, role: str) -> dict:
        """Exact metrics on a split; the loss weighs tasks by the weighting's current weights."""
        dataset = self.data.eval_dataset(role, self.config.training.batch_size)
        return self.evaluator().evaluate(dataset, self.weighting.weights())


def build_components(config, strategy=None, *, training: bool = True, data: TaskData | None = None,
                     initial_weights=None, adapt_text: bool = True) -> Components:
    """Builds every component of `config` under `strategy` (default: the current one).

    Args:
        training: also build the optimizer (for the total step count the config implies).
        data: an already loaded TaskData of the same config, to skip reading the sources again.
        initial_weights: model weights to start from (e.g. to compare strategies from one initialisation).
        adapt_text: build text vocabularies from the training split (false when a checkpoint will set them).
    """
    strategy = strategy or tf.distribute.get_strategy()
    keras.mixed_precision.set_global_policy(config.training.mixed_precision)
    data = data or build_task_data(config)
    cfg = config.training
    optimizer = lr_scale = average = None
    with strategy.scope():
        model = build_model(config.model, data, adapt_text=adapt_text)
        if initial_weights is not None:
            model.set_weights(initial_weights)
        weighting = build_weighting(cfg.weighting, data.tasks, model, config.experiment.seed,
                                    data.steps_per_epoch(cfg.batch_size))
        if training:
            # The non-finite guard's learning-rate factor (lowered by `reduce_lr` only). It exists under every
            # action, so a run resumed under another action restores the same checkpoint.
            lr_scale = keras.Variable(1.0, dtype="float32", trainable=False, name="nonfinite_lr_scale",
                                      aggregation="only_first_replica")
            optimizer = build_optimizer(cfg.optimizer, total_steps(cfg, data), cfg.mixed_precision, lr_scale)
            optimizer.build(list(model.trainable_variables) + list(weighting.trainable_variables))
    if training and cfg.ema_momentum is not None:
        average = WeightAverage(model, strategy, cfg.ema_momentum)
    data.attach_vectorizers({f: vs[0].ids for f, vs in model.text_vectorizers().items()})
    distillation = build_distillation(config, data, strategy) if training else None
    return Components(config, strategy, data, model, weighting, optimizer, lr_scale, distillation, average)


def restore_components(run_dir: str, checkpoint: str = "best") -> tuple[Components, str]:
    """Rebuilds a finished run from its config.yaml and loads its weights.

    Args:
        checkpoint: "best" (if early stopping kept one, else latest) or "latest".

    Returns:
        (components built for inference, checkpoint path).
    """
    from moe_tf.run_dir import read_run_config

    config = read_run_config(run_dir)
    components = build_components(config, training=False, adapt_text=False)
    path = restore_for_inference(run_dir, components.model, prefer_best=checkpoint == "best")
    return components, path
