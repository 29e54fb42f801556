"""What every data source returns, and the base class sources derive from."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

SPLIT_ROLES = ("train", "eval", "test")


@dataclass
class LabelInfo:
    """One label column of a source: how many classes and their names."""

    num_classes: int
    class_names: list[str]


@dataclass
class SourceData:
    """A loaded source.

    `splits` maps a role ("train", "eval", "test") to an unbatched dataset of
    `(image uint8 [H, W, C], {label_name: int64 []})`. `arrays` holds the same data as numpy
    (images, {label: values}) for in-memory sources, so labels can be checked before training.
    """

    splits: dict[str, tf.data.Dataset]
    input_shape: tuple[int, int, int]
    labels: dict[str, LabelInfo]
    sizes: dict[str, int]
    arrays: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = field(default_factory=dict)
    modality: str = "image"


class DataSource(abc.ABC):
    """A data source turns its `Config` into a `SourceData`."""

    Config: type

    def __init__(self, config, seed: int):
        self.config = config
        self.seed = seed

    @abc.abstractmethod
    def load(self) -> SourceData:
        """Reads the data (or prepares lazy readers) for every split role."""


def split_arrays(images, labels: dict, fractions: dict[str, float], seed: int):
    """Splits arrays by a seeded permutation into roles, in the order of `fractions` (the rest goes last).

    Args:
        images: [N, H, W, C] uint8.
        labels: {name: [N] int}.
        fractions: role → fraction of N for every role but the last, which takes the rest.

    Returns:
        role → (images, labels).
    """
    n = len(images)
    order = np.random.default_rng(seed).permutation(n)
    roles = list(fractions)
    out, start = {}, 0
    for i, role in enumerate(roles):
        stop = n if i == len(roles) - 1 else start + int(round(fractions[role] * n))
        idx = np.sort(order[start:stop])
        out[role] = (images[idx], {k: v[idx] for k, v in labels.items()})
        start = stop
    return out


def from_arrays(arrays: dict, labels: dict[str, LabelInfo]) -> SourceData:
    """Builds a SourceData from role → (images [N, H, W, C] uint8, {label: [N]})."""
    splits = {
        role: tf.data.Dataset.from_tensor_slices((x, {k: v.astype(np.int64) for k, v in y.items()}))
        for role, (x, y) in arrays.items()
    }
    first = next(iter(arrays.values()))[0]
    return SourceData(
        splits=splits,
        input_shape=tuple(int(d) for d in first.shape[1:]),
        labels=labels,
        sizes={role: len(x) for role, (x, _) in arrays.items()},
        arrays=arrays,
    )
