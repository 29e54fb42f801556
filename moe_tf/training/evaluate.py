"""Evaluation of a trained run on one split (`moe-tf evaluate`)."""

from __future__ import annotations

import keras
import tensorflow as tf

from moe_tf.run_dir import read_run_config


def evaluate_run(run_dir: str, split: str = "test", checkpoint: str = "best") -> dict:
    """Restores the run's weights and returns exact metrics on `split` ("eval" or "test")."""
    from moe_tf.data import build_task_data
    from moe_tf.models import build_model
    from moe_tf.training.checkpoints import restore_for_inference
    from moe_tf.training.trainer import Trainer
    from moe_tf.training.weightings import WEIGHTINGS

    config = read_run_config(run_dir)
    keras.mixed_precision.set_global_policy(config.training.mixed_precision)
    data = build_task_data(config)
    model = build_model(config.model, data.tasks, data.input_shape)
    path = restore_for_inference(run_dir, model, prefer_best=checkpoint == "best")
    weighting = WEIGHTINGS.get(config.training.weighting.type)({t.name: t.weight for t in data.tasks},
                                                              config.training.weighting)
    trainer = Trainer(model, weighting, keras.optimizers.Adam(), tf.distribute.get_strategy(), data.tasks,
                      config.training)
    summary = trainer.evaluate(data.eval_dataset(split, config.training.batch_size))
    step = int(path.rsplit("-", 1)[-1])
    return {"tasks": summary["tasks"], "split": split, "step": step, "loss": summary["loss"], "checkpoint": path,
            "gates": summary["gates"]}
