"""MNIST-format IDX files on local disk (gzipped or not): MNIST, Fashion-MNIST, KMNIST …"""

from __future__ import annotations

import gzip
import os
import struct
from typing import Literal

import numpy as np
from pydantic import Field

from moe_tf.config.base import StrictModel, feature_name_field
from moe_tf.data.base import DataSource, LabelInfo, from_arrays, image_spec, split_arrays
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.int16, 0x0C: np.int32, 0x0D: np.float32, 0x0E: np.float64}


def read_idx(path: str) -> np.ndarray:
    """Reads one IDX file (optionally .gz) into an array of its declared shape and type."""
    if not os.path.exists(path):
        raise DataError(f"IDX file not found: {path}")
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]]).newbyteorder(">")
    expected = int(np.prod(dims)) * dtype.itemsize
    body = data[4 + 4 * ndim :]
    if len(body) != expected:
        raise DataError(f"{path}: truncated IDX file (expected {expected} bytes of data, found {len(body)})")
    return np.frombuffer(body, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _find(directory: str, stem: str) -> str:
    for name in (stem, stem + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise DataError(f"IDX file not found: {os.path.join(directory, stem)}[.gz]")


@DATASETS.register("idx")
class IdxSource(DataSource):
    """`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`, `t10k-…` in one directory.

    The eval split is a seeded `eval_fraction` of the training files; the test split is the t10k files.
    """

    class Config(StrictModel):
        type: Literal["idx"] = Field(
            "idx",
            description="MNIST-format `train-*`/`t10k-*` IDX files, `.gz` or not; eval is carved from train, test is "
            "t10k",
        )
        feature: str = feature_name_field()
        path: str = Field(
            "/usr/share/datasets/fashion-mnist",
            description="directory of the `train-*` and `t10k-*` files (Debian: `apt-get install "
            "dataset-fashion-mnist`)",
        )
        eval_fraction: float = Field(
            0.1, ge=0.0, lt=1.0, description="share of the training files' examples in the eval split"
        )
        class_names: list[str] | None = Field(
            None, description="default: Fashion-MNIST's for a path naming `fashion`, else 0..N-1"
        )
        limit: int | None = Field(None, ge=1, description="use only the first N training examples")

    def load(self):
        cfg = self.config
        if not os.path.isdir(cfg.path):
            raise DataError(f"IDX directory not found: {cfg.path} (data.sources.{self.name}.path)")

        def read(prefix):
            images = read_idx(_find(cfg.path, f"{prefix}-images-idx3-ubyte"))
            labels = read_idx(_find(cfg.path, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
            if len(images) != len(labels):
                raise DataError(f"{cfg.path}: {prefix} has {len(images)} images but {len(labels)} labels")
            return images.astype(np.uint8)[..., None], labels  # [N, H, W, 1]

        train_x, train_y = read("train")
        if cfg.limit:
            train_x, train_y = train_x[: cfg.limit], train_y[: cfg.limit]
        test_x, test_y = read("t10k")
        arrays = split_arrays(
            {cfg.feature: train_x}, {"label": train_y}, {"eval": cfg.eval_fraction, "train": 0.0}, self.seed
        )
        arrays["test"] = ({cfg.feature: test_x}, {"label": test_y})
        num_classes = int(max(train_y.max(), test_y.max())) + 1
        names = cfg.class_names or (
            FASHION_MNIST_CLASSES
            if num_classes == 10 and "fashion" in cfg.path.lower()
            else [str(i) for i in range(num_classes)]
        )
        if len(names) != num_classes:
            raise DataError(f"{cfg.path}: class_names has {len(names)} names but the labels have {num_classes} classes")
        return from_arrays(
            arrays, {"label": LabelInfo(num_classes, list(names))}, {cfg.feature: image_spec(train_x.shape[1:])}
        )
