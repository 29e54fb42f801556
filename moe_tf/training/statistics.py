"""A step's statistics packed into one float32 vector: one cross-replica reduction and one running-sum variable.

The template (zeros with the structure and shapes of one batch's sums) comes from running the model once on a batch
of zeros shaped like its inputs.
"""

from __future__ import annotations

import numpy as np
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


def pack(tree) -> tf.Tensor:
    return tf.concat([tf.reshape(tf.cast(t, tf.float32), [-1]) for t in tf.nest.flatten(tree)], axis=0)


def unpack(vector: np.ndarray, template):
    """Inverse of `pack`: numpy arrays with `template`'s structure and shapes."""
    parts, start = [], 0
    for t in tf.nest.flatten(template):
        size = int(np.prod(t.shape))
        parts.append(vector[start:start + size].reshape(t.shape))
        start += size
    return tf.nest.pack_sequence_as(template, parts)
