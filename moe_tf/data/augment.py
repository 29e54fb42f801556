"""Image augmentation for training (random flip, pad-and-crop, translate), stateless and seeded per example."""

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
    return image
