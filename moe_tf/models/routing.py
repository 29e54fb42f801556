"""Sparse dispatch: turning a gate's choices into per-expert slots, and the auxiliary-loss formulas gates share.

A sparse gate routes each example to a few experts. Its choices become, for each expert e, `capacity` slots:
`slot_example[e, c]` is the example in slot c (or `batch`, an all-zero row, when the slot is empty) and
`slot_weight[e, c]` its combine weight. The experts then run on [experts, capacity, features] rows only, so
compute falls with the number of experts an example visits, and every shape is static given the batch size
(XLA- and TPU-friendly). An assignment beyond an expert's capacity is dropped and counted.
"""

from __future__ import annotations

import math

import tensorflow as tf


def capacity(batch, assignments_per_example: float, num_experts: int, factor: float):
    """Slots per expert: ceil(factor · batch · assignments_per_example / experts), at least 1 and at most `batch`
    (an expert never takes one example twice). `batch` may be a tensor."""
    batch = tf.cast(batch, tf.float32)
    c = tf.math.ceil(factor * batch * assignments_per_example / num_experts)
    return tf.cast(tf.clip_by_value(c, 1.0, tf.maximum(batch, 1.0)), tf.int32)


def token_choice_slots(indices, weights, num_experts: int, slots):
    """Each example's top-k choices → per-expert slots, first choices first (GShard / Switch priority).

    Args:
        indices: int [batch, k], the experts each example chose (distinct per example).
        weights: float [batch, k], their combine weights.
        num_experts: E.
        slots: capacity C per expert (int scalar, may be a tensor).

    Returns:
        slot_example int32 [E, C] (batch = empty), slot_weight float32 [E, C], kept bool [batch, k].
    """
    batch = tf.shape(indices)[0]
    k = indices.shape[1]
    # Priority order: every example's first choice, then every second choice, … → assignment a = j·batch + b.
    flat_expert = tf.reshape(tf.transpose(indices), [-1])  # [k·batch]
    flat_weight = tf.reshape(tf.transpose(weights), [-1])
    flat_example = tf.tile(tf.range(batch), [k])
    onehot = tf.one_hot(flat_expert, num_experts, dtype=tf.int32)  # [A, E]
    position = tf.reduce_sum((tf.cumsum(onehot, axis=0, exclusive=True)) * onehot, axis=1)  # [A]
    keep = position < slots
    dump = num_experts * slots  # one spare slot takes every dropped assignment
    target = tf.where(keep, flat_expert * slots + position, dump)[:, None]
    slot_example = tf.scatter_nd(target, flat_example - batch, [dump + 1])[:dump] + batch
    slot_weight = tf.scatter_nd(target, tf.cast(flat_weight, tf.float32) * tf.cast(keep, tf.float32), [dump + 1])[:dump]
    kept = tf.transpose(tf.reshape(keep, [k, batch]))
    return tf.reshape(slot_example, [num_experts, slots]), tf.reshape(slot_weight, [num_experts, slots]), kept


def routed_counts(slot_example, batch, num_experts: int):
    """Examples each expert processed: float32 [E]."""
    return tf.reduce_sum(tf.cast(slot_example < batch, tf.float32), axis=1)


def cv_squared(x):
    """Squared coefficient of variation of a vector: var / (mean² + ε) (Shazeer et al. 2017)."""
    x = tf.cast(x, tf.float32)
    mean = tf.reduce_mean(x)
    return tf.reduce_mean(tf.square(x - mean)) / (tf.square(mean) + 1e-10)


def z_loss(logits):
    """Router z-loss (Zoph et al. 2022, ST-MoE): mean over examples of logsumexp(logits)²."""
    return tf.reduce_mean(tf.square(tf.reduce_logsumexp(tf.cast(logits, tf.float32), axis=-1)))


def normal_cdf(x):
    return 0.5 * (1.0 + tf.math.erf(x / math.sqrt(2.0)))
