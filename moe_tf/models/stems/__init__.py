"""Modality stems: a preprocessed input → feature vector. One file per stem, registered in STEMS.

Each stem class lists the `modalities` it takes; DEFAULT_STEMS names the stem a modality gets when the config
names none. In a run with categorical inputs, numeric inputs default to the categorical default (`tabular`), so
both meet in one stem.
"""

from moe_tf.registry import STEMS

__all__ = ["STEMS"]

DEFAULT_STEMS = {"image": "conv", "numeric": "dense", "text": "bag", "categorical": "tabular"}
