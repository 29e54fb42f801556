"""Generated data files: a tabular npz source and IDX files (the Fashion-MNIST format)."""

from __future__ import annotations

import gzip
import struct

import numpy as np


def write_tabular_npz(path, n=600, seed=0) -> str:
    """A numeric source: `x` [n, 6] floats; `kind` (binary, 1/4 missing as -1) and `score` (float, 1/4 NaN)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(2.0, 3.0, (n, 6)).astype(np.float32)  # mean 2, std 3: normalisation matters
    kind = (x[:, 0] + x[:, 1] > 4.0).astype(np.int64)
    kind[::4] = -1
    score = (0.5 * x[:, 2] - x[:, 3]).astype(np.float32)
    score[1::4] = np.nan
    np.savez(path, x=x, kind=kind, score=score)
    return str(path)


def write_idx(path: str, array: np.ndarray) -> None:
    """`array` (uint8) as an IDX file (gzip-compressed when `path` ends with .gz)."""
    codes = {np.uint8: 0x08}
    header = bytes([0, 0, codes[array.dtype.type], array.ndim]) + struct.pack(">" + "I" * array.ndim, *array.shape)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())
