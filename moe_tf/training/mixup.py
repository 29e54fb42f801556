"""Mixup (Zhang et al. 2018) in the training step (`data.augmentation.mixup: α`).

Each replica's batch is mixed with a permutation of itself: x̃ = λ·x + (1 − λ)·x[π], one λ ~ Beta(α, α) per step,
and each task's loss is λ·L(y) + (1 − λ)·L(y[π]) (the partner's loss weights permuted with it, so an unlabelled
partner adds nothing). λ and π are drawn from the experiment's seed and the step, so a resumed run mixes the same
batches. Training metrics are against the first image's labels; evaluation never mixes.

It mixes images; a run whose model has other inputs, several sources or a distillation teacher is refused (their
mix has no single meaning).
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from moe_tf.errors import ConfigError

_SALT = 104_729  # mixup's draws are seeded apart from the pipeline's augmentation


class MixDraw(NamedTuple):
    """A step's mixing: λ (float32 scalar) and the partner of each example of a replica's batch (int32 [batch])."""

    lam: tf.Tensor
    order: tf.Tensor


class Mixup:
    """Args: alpha: α of Beta(α, α); seed: the experiment's seed; images: the image inputs' names."""

    def __init__(self, alpha: float, seed: int, images: list[str]):
        self.alpha, self.seed, self.images = float(alpha), int(seed), list(images)

    def draw(self, step, batch: int) -> MixDraw:
        """The draw of step `step` for replica batches of `batch` examples. Drawn outside the compiled step (XLA has
        no gamma sampler) and handed to every replica."""
        seed = tf.stack([tf.constant(self.seed + _SALT, tf.int64), tf.cast(step, tf.int64)])
        seeds = tf.random.experimental.stateless_split(seed, num=3)
        a = tf.random.stateless_gamma([], seeds[0], alpha=self.alpha)
        b = tf.random.stateless_gamma([], seeds[1], alpha=self.alpha)
        order = tf.argsort(tf.random.stateless_uniform([batch], seeds[2]))
        return MixDraw(a / tf.maximum(a + b, 1e-12), order)  # argsort gives int32

    def mix(self, inputs: dict, draw: MixDraw) -> dict:
        """The inputs with every image mixed with its partner's (float32 in the 0–255 range)."""
        mixed = dict(inputs)
        for f in self.images:
            x = tf.cast(inputs[f], tf.float32)
            mixed[f] = draw.lam * x + (1.0 - draw.lam) * tf.gather(x, draw.order)
        return mixed

    @staticmethod
    def partner(nest: dict, order) -> dict:
        """Labels or loss weights {task: [batch, ...]} of each example's partner."""
        return {k: tf.gather(v, order) for k, v in nest.items()}


def build_mixup(config, data) -> Mixup | None:
    """The Mixup of `data.augmentation.mixup` (None when 0), or a ConfigError for a run it cannot mix."""
    alpha = config.data.augmentation.mixup
    if not alpha:
        return None
    where = "data.augmentation.mixup"
    others = [f for f, spec in data.features.items() if spec.modality != "image"]
    if others:
        raise ConfigError(
            f"{where}: mixup mixes image inputs; input {others[0]!r} is {data.features[others[0]].modality}"
        )
    if data.multi_source:
        raise ConfigError(f"{where}: mixup mixes the examples of one source; this run reads {len(data.sources)}")
    if config.training.distillation.teacher:
        raise ConfigError(f"{where}: not with distillation (the teacher's targets are of unmixed images)")
    return Mixup(alpha, config.experiment.seed, sorted(data.features))
