"""Batch normalisation in this loop: the stems' `batch_norm` settings, and which variables the trainer treats apart.

The layers are keras.layers.BatchNormalization. What the training loop adds (moe_tf/training/trainer.py):

- Moving statistics agree across replicas. Keras keeps them in variables every replica updates on its own, so
  under `mirrored` or `multi_worker` each copy would drift to its replica's sub-batches and a checkpoint would keep
  the first one's. After each step's forward pass the replicas' moving means and variances are averaged in the
  step's one all-reduce (no extra round of communication), so every replica holds the same statistics: those of
  the global batch's mean over replicas, which checkpoints, the weight average and the export see. A step the
  non-finite guard does not apply leaves them as they were.
- What a replica normalises over in training: its own part of the global batch (Keras' default and the ResNet
  papers' setting), or with `synchronized: true` the whole global batch: every batch-norm layer sums the batch
  moments across replicas, the same numbers as on one device, at three small all-reduces per layer in the forward
  pass (and their gradients in the backward pass). Such a step's forward pass then does not compile with XLA under
  several replicas (a cross-replica call inside it).
- The scale and offset (gamma, beta) are left out of weight decay, the usual convention for normalisation
  parameters; `model.l2` never applied to them.
- Moving statistics update only in training (`training=True`) and in a layer that is trainable: a frozen stem
  (`model.freeze`, a `keras_applications` stem with `trainable: false`) normalises with its stored statistics.
"""

from __future__ import annotations

import keras
from pydantic import Field

from moe_tf.config.base import StrictModel


class BatchNormConfig(StrictModel):
    """A stem's batch normalisation."""

    momentum: float = Field(
        0.99, gt=0.0, lt=1.0, description="moving statistics: m ← momentum·m + (1 − momentum)·batch"
    )
    epsilon: float = Field(1e-3, gt=0.0, description="added to the variance")
    synchronized: bool = Field(
        False,
        description="normalise over the global batch under several replicas (default: each replica over its "
        "own part of the batch)",
    )


def batch_norm_layer(settings, name: str) -> keras.layers.BatchNormalization:
    """A BatchNormalization layer from a BatchNormConfig (or its dict; None: the defaults)."""
    s = BatchNormConfig.model_validate(settings or {})
    return keras.layers.BatchNormalization(
        momentum=s.momentum, epsilon=s.epsilon, synchronized=s.synchronized, name=name
    )


def norm_layers(model) -> list:
    """Every BatchNormalization layer in `model` (its stems', a Keras Applications backbone's)."""
    return [layer for layer in model._flatten_layers() if isinstance(layer, keras.layers.BatchNormalization)]


def moving_statistics(model) -> list:
    """The moving means and variances of `model`'s batch-norm layers."""
    return [v for layer in norm_layers(model) for v in (layer.moving_mean, layer.moving_variance)]


def norm_parameters(model) -> list:
    """The scales and offsets of `model`'s batch-norm layers (left out of weight decay)."""
    return [w for layer in norm_layers(model) for w in (layer.gamma, layer.beta) if w is not None]


def synchronized_norm(model) -> bool:
    """True when a batch-norm layer of `model` normalises over the global batch."""
    return any(layer.synchronized for layer in norm_layers(model))
