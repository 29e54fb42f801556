"""The template of a step's statistics: zeros with the structure and shapes of one batch's sums (what is flattened
into one float32 vector, moe_tf.training.vectors), from running the model once on a batch of zeros shaped like its
inputs."""

from __future__ import annotations

import tensorflow as tf

from moe_tf.models import example_inputs
from moe_tf.training.objectives import batch_stats


def stats_template(model, tasks, features) -> dict:
    """Zeros structured like `batch_stats` of one batch.

    Args:
        model: the MultiTaskModel.
        tasks: resolved TaskInfo list.
        features: {feature: FeatureSpec}, the model inputs.
    """
    labels = {t.name: tf.zeros((1,), tf.float32 if t.kind == "regression" else tf.int64) for t in tasks}
    stats, _ = batch_stats(tasks, model(example_inputs(features), training=False), labels)
    return tf.nest.map_structure(tf.zeros_like, stats)
