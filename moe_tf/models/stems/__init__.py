"""Modality stems: raw (already scaled) input → feature vector. One file per stem, registered in STEMS."""

from moe_tf.registry import Registry

STEMS = Registry("stem")

from moe_tf.models.stems import conv, dense  # noqa: E402,F401
