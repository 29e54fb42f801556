"""The tiny digits config every quick test and case table starts from."""

from __future__ import annotations

from typing import Any

from moe_tf.config.loader import deep_merge

TINY: dict[str, Any] = {
    "experiment": {"name": "tiny", "seed": 7},
    "data": {"sources": {"digits": {"type": "digits"}}, "shuffle_buffer": 2000},
    "tasks": [
        {"name": "digit", "dataset": "digits", "metrics": ["accuracy", "top5_accuracy"]},
        {
            "name": "high",
            "dataset": "digits",
            "type": "binary",
            "label_map": [0, 0, 0, 0, 0, 1, 1, 1, 1, 1],
            "weight": 0.5,
        },
    ],
    "model": {
        "architecture": "mmoe",
        "stem": {"type": "conv", "filters": [8]},
        "trunk": {"units": [32]},
        "experts": {"count": 3, "units": [16]},
        "tower": {"units": [16]},
    },
    "training": {"epochs": 2, "batch_size": 64, "log_every": 5, "optimizer": {"learning_rate": 0.01}},
    "logging": {"progress": "none"},
}


def tiny_dict(**sections) -> dict:
    """The tiny digits config as a dict, with `sections` deep-merged over it."""
    return deep_merge(TINY, sections)
