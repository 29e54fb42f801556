"""Image augmentation for training (random flip, pad-and-crop, translate, cutout), stateless and seeded per example.
Mixup mixes whole batches in the training step (moe_tf/training/mixup.py)."""

from __future__ import annotations

import tensorflow as tf


def augment_image(image, aug, seed):
    """Augments one uint8 image [H, W, C].

    Args:
        image: uint8 [H, W, C].
        aug: the `data.augmentation` config.
        seed: int64 [2], unique per example and epoch (so runs and resumes are reproducible).

    Returns:
        uint8 [H, W, C], the same shape.
    """
    seeds = tf.random.experimental.stateless_split(seed, num=3)
    h, w, c = image.shape
    if aug.flip in ("horizontal", "both"):
        image = tf.image.stateless_random_flip_left_right(image, seeds[0])
    if aug.flip in ("vertical", "both"):
        image = tf.image.stateless_random_flip_up_down(image, seeds[0][::-1])
    pad = aug.crop_padding
    if aug.translate > 0:
        pad = max(pad, int(round(aug.translate * max(h, w))))
    if pad > 0:
        padded = tf.pad(image, [[pad, pad], [pad, pad], [0, 0]])  # [H + 2p, W + 2p, C]
        image = tf.image.stateless_random_crop(padded, [h, w, c], seeds[1])
    if aug.cutout > 0:
        image = cutout(image, aug.cutout, seeds[2])
    return image


def cutout(image, size: int, seed):
    """Zeroes a size×size square centred on a uniformly drawn pixel, clipped at the borders (DeVries & Taylor 2017:
    the square may lie partly outside, so some images keep more). image: [H, W, C] → the same."""
    h, w = image.shape[0], image.shape[1]
    pair = tf.random.experimental.stateless_split(seed, num=2)
    cy = tf.random.stateless_uniform([], pair[0], 0, h, dtype=tf.int32)
    cx = tf.random.stateless_uniform([], pair[1], 0, w, dtype=tf.int32)
    rows = tf.range(h) - (cy - size // 2)  # [H]: 0..size-1 inside the square
    cols = tf.range(w) - (cx - size // 2)
    inside = ((rows >= 0) & (rows < size))[:, None] & ((cols >= 0) & (cols < size))[None, :]  # [H, W]
    return tf.where(inside[:, :, None], tf.zeros_like(image), image)
