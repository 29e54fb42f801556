"""Evaluation of a trained run on one split (`moe-tf evaluate`)."""

from __future__ import annotations

import keras
import tensorflow as tf


def evaluate_run(run_dir: str, split: str = "test", checkpoint: str = "best") -> dict:
    """Restores the run's weights and returns exact metrics on `split` ("eval" or "test")."""
    from moe_tf.training.checkpoints import restore_run
    from moe_tf.training.trainer import Trainer
    from moe_tf.training.weightings import build_weighting

    config, data, model, path = restore_run(run_dir, checkpoint)
    weighting = build_weighting(config.training.weighting, data.tasks)
    trainer = Trainer(model, weighting, keras.optimizers.Adam(), tf.distribute.get_strategy(), data.tasks,
                      config.training)
    summary = trainer.evaluate(data.eval_dataset(split, config.training.batch_size))
    step = int(path.rsplit("-", 1)[-1])
    return {"tasks": summary["tasks"], "split": split, "step": step, "loss": summary["loss"], "checkpoint": path,
            "gates": summary["gates"]}
