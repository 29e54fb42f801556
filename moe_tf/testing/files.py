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


CITIES = ["paris", "lyon", "nice", "lille", "brest", "metz"]
PLANS = ["free", "basic", "pro"]


def write_census_csv(path, n=800, seed=0, extra_city: str | None = None) -> str:
    """A census-style table: categorical `city` (6 values, `?` for missing) and `plan` (3), integer `user` ids,
    numeric `age` and `spend` (heavy-tailed), a 0/1 `member` column; labels `bought` (binary, driven by plan, city
    and age) and `segment` (3 classes, driven by plan and spend). `extra_city` replaces the city of the last row
    (a value the rest of the file does not have)."""
    rng = np.random.default_rng(seed)
    city = rng.choice(CITIES, n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05]).astype(object)
    city[rng.random(n) < 0.05] = "?"
    plan = rng.choice(PLANS, n)
    user = rng.integers(0, 50, n)
    age = rng.integers(18, 80, n)
    spend = np.round(rng.lognormal(3.0, 1.5, n), 2)
    member = (rng.random(n) < 0.1).astype(int)
    score = (plan == "pro") * 1.5 + np.isin(city, ["paris", "nice"]) * 1.0 - (age - 45) / 20 + member
    bought = (score + rng.normal(0, 0.5, n) > 0.8).astype(int)
    segment = np.where(plan == "free", 0, np.where(spend > 40, 2, 1))
    if extra_city is not None:
        city[-1] = extra_city
    with open(path, "w") as f:
        f.write("city,plan,user,age,spend,member,bought,segment\n")
        for row in zip(city, plan, user, age, spend, member, bought, segment):
            f.write(",".join(str(v) for v in row) + "\n")
    return str(path)
