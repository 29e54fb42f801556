"""What every data source returns (typed features and labels), and the base class sources derive from."""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

SOURCE_KEY = "_source"  # the model input saying which source each example of a batch comes from (several sources)
WEIGHT_SUFFIX = "__weight"  # a label's per-example sample weights travel as the label "<label>__weight"


@dataclass(frozen=True)
class FeatureSpec:
    """One named input feature of a source, per example.

    Args:
        dtype: numpy dtype name (`uint8`, `float32`, `int64`, …) or `string` for text.
        shape: the shape of one example (`[]` for a scalar, `[H, W, C]` for an image).
        modality: `image`, `numeric`, `text` or `categorical`; picks the feature's preprocessing and default stem.
        options: per-modality settings: a categorical feature's vocabulary and embedding settings
            (moe_tf.data.categorical); a numeric feature's `columns` (the file columns it is made of), `log1p` and
            `nullable` (per element: read through log1p; had missing values).
    """

    dtype: str
    shape: tuple[int, ...]
    modality: str
    options: dict = field(default_factory=dict, hash=False)

    @property
    def tf_dtype(self) -> tf.DType:
        return tf.string if self.dtype == "string" else tf.as_dtype(self.dtype)

    @property
    def numpy_dtype(self):
        return object if self.dtype == "string" else np.dtype(self.dtype)

    def tensor_spec(self, name: str) -> tf.TensorSpec:
        """The batched spec: [batch, *shape]."""
        return tf.TensorSpec([None, *self.shape], self.tf_dtype, name=name)

    def zeros(self, batch) -> tf.Tensor:
        """A batch of `batch` empty examples (zeros, or empty strings for text)."""
        if self.dtype == "string":
            return tf.fill([batch, *self.shape], "")
        return tf.zeros([batch, *self.shape], self.tf_dtype)

    def to_dict(self) -> dict:
        out = {"dtype": self.dtype, "shape": list(self.shape), "modality": self.modality}
        return {**out, "options": dict(self.options)} if self.options else out


@dataclass
class LabelInfo:
    """One label column of a source.

    `kind` is `class` (integer class ids, -1 = missing), `value` (float regression targets, NaN = missing) or
    `weight` (another label's per-example sample weights, see `SourceData.sample_weights`; tasks cannot read it).
    """

    num_classes: int
    class_names: list[str]
    kind: str = "class"


@dataclass
class SourceData:
    """A loaded source.

    `splits` maps a role ("train", "eval", "test") to an unbatched dataset of
    `({feature: tensor}, {label: int64 [] or float32 []})`. `arrays` holds the same data as numpy
    (`({feature: [N, ...]}, {label: [N]})`) for in-memory sources, so labels can be checked before training.
    """

    splits: dict[str, tf.data.Dataset]
    features: dict[str, FeatureSpec]
    labels: dict[str, LabelInfo]
    sizes: dict[str, int]
    arrays: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = field(default_factory=dict)
    sample_weights: dict[str, str] = field(default_factory=dict)  # label → the label key holding its sample weights
    # A streamed source's training elements of one epoch, from the epoch's seed (a seeded file order) and a file
    # shard (k, n) or None (the files of shard k of n: the order's files k, k + n, …); None: the pipeline shuffles
    # `splits["train"]` itself. With `parse`, the elements are serialized records and `parse` turns
    # a batch of them into a batch of examples (shuffling and batching strings, then parsing each batch in one op).
    train_epoch: Callable[..., tf.data.Dataset] | None = None
    parse: Callable | None = None
    statistics: Any = None  # a streamed source's SourceStatistics, gathered while it read its files
    skipped_files: list[str] = field(default_factory=list)  # corrupt files left out (`skip_corrupt`)
    pass_record: dict | None = None  # a streamed source's pass (moe_tf.data.streamed), kept in the run directory
    file_examples: list[int] = field(default_factory=list)  # a streamed source's training examples per file


class DataSource(abc.ABC):
    """A data source turns its `Config` into a `SourceData`.

    Args:
        config: the source's `Config`.
        seed: `experiment.seed` (splits are seeded by it).
        name: the key of the source in `data.sources` (for error messages).
        stored: a streamed source's pass as the run directory keeps it (moe_tf.data.streamed.StoredPass), read
            instead of passing over the files again.
        echo: prints a streamed source's progress through its pass (None: silent).
    """

    Config: type

    def __init__(self, config, seed: int, name: str = "source", stored=None, echo=None):
        self.config = config
        self.seed = seed
        self.name = name
        self.stored = stored
        self.echo = echo

    @abc.abstractmethod
    def load(self) -> SourceData:
        """Reads the data (or prepares lazy readers) for every split role."""


def split_arrays(features: dict, labels: dict, fractions: dict[str, float], seed: int):
    """Splits arrays by a seeded permutation into roles, in the order of `fractions` (the rest goes last).

    Args:
        features: {name: [N, ...]}.
        labels: {name: [N]}.
        fractions: role → fraction of N for every role but the last, which takes the rest.

    Returns:
        role → ({feature: [n, ...]}, {label: [n]}).
    """
    n = len(next(iter(features.values())))
    order = np.random.default_rng(seed).permutation(n)
    roles = list(fractions)
    out, start = {}, 0
    for i, role in enumerate(roles):
        stop = n if i == len(roles) - 1 else start + int(round(fractions[role] * n))
        idx = np.sort(order[start:stop])
        out[role] = ({k: v[idx] for k, v in features.items()}, {k: v[idx] for k, v in labels.items()})
        start = stop
    return out


def _label_array(values: np.ndarray, info: LabelInfo) -> np.ndarray:
    return values.astype(np.float32) if info.kind in ("value", "weight") else values.astype(np.int64)


def from_arrays(arrays: dict, labels: dict[str, LabelInfo], features: dict[str, FeatureSpec]) -> SourceData:
    """Builds a SourceData from role → ({feature: [N, ...]}, {label: [N]})."""
    arrays = {
        role: (
            {k: np.asarray(v, dtype=features[k].numpy_dtype) for k, v in x.items()},
            {k: _label_array(v, labels[k]) for k, v in y.items()},
        )
        for role, (x, y) in arrays.items()
    }
    splits = {role: tf.data.Dataset.from_tensor_slices((x, y)) for role, (x, y) in arrays.items()}
    return SourceData(
        splits=splits,
        features=features,
        labels=labels,
        sizes={role: len(next(iter(x.values()))) for role, (x, _) in arrays.items()},
        arrays=arrays,
    )


def image_spec(shape) -> FeatureSpec:
    return FeatureSpec("uint8", tuple(int(d) for d in shape), "image")
