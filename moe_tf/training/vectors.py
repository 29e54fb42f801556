"""A nest of tensors ↔ one float32 vector: the step's statistics (one cross-replica reduction, one running sum) and
the weightings' per-task gradients ([tasks, params] for surgery) both travel this way."""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def flatten(tensors) -> tf.Tensor:
    """A nest of tensors (a list, a dict, ...) → one float32 vector, leaves in `tf.nest.flatten` order."""
    return tf.concat([tf.reshape(tf.cast(t, tf.float32), [-1]) for t in tf.nest.flatten(tensors)], 0)


def unflatten(vector, like):
    """Inverse of `flatten`: `vector` cut into pieces with the structure and shapes of the nest `like`. A numpy
    vector gives numpy arrays (host-side reading); a tensor gives tensors cast to the dtypes of `like`'s leaves
    (e.g. gradients of variables)."""
    parts, start = [], 0
    for leaf in tf.nest.flatten(like):
        size = int(np.prod(leaf.shape))
        piece = vector[start : start + size]
        parts.append(
            piece.reshape(leaf.shape)
            if isinstance(vector, np.ndarray)
            else tf.cast(tf.reshape(piece, leaf.shape), leaf.dtype)
        )
        start += size
    return tf.nest.pack_sequence_as(like, parts)
