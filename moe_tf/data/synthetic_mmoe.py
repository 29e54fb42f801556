"""The synthetic two-task regression of Ma et al. 2018 (MMoE, KDD, section 3.2), whose task correlation is a knob.

1. Two orthogonal unit vectors u1, u2 in R^d.
2. Task weight vectors w1 = c·u1, w2 = c·(p·u1 + sqrt(1 - p²)·u2): their cosine is the correlation p.
3. Inputs x ~ N(0, I_d).
4. y_t = w_tᵀx + Σ_{i=1..m} sin(α_i·w_tᵀx + β_i) + ε_t, with α_i, β_i ~ N(0, 1) shared by both tasks and
   ε_t ~ N(0, noise_std²).

The sinusoids make the tasks' relation non-linear, so the Pearson correlation of the labels falls with p without
equalling it. Everything is drawn from `seed` (default: `experiment.seed`).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.data.base import DataSource, FeatureSpec, LabelInfo, from_arrays, split_arrays
from moe_tf.registry import DATASETS


def task_weights(dim: int, correlation: float, scale: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(w1, w2) with cos(w1, w2) = correlation and |w| = scale."""
    q, _ = np.linalg.qr(rng.normal(size=(dim, 2)))  # two orthonormal columns
    u1, u2 = q[:, 0], q[:, 1]
    return scale * u1, scale * (correlation * u1 + np.sqrt(max(1.0 - correlation**2, 0.0)) * u2)


def generate(size: int, dim: int, correlation: float, sinusoids: int, scale: float, noise_std: float, seed: int):
    """Returns (x [size, dim] float32, y1 [size], y2 [size], w1, w2)."""
    rng = np.random.default_rng(seed)
    w1, w2 = task_weights(dim, correlation, scale, rng)
    alpha, beta = rng.normal(size=sinusoids), rng.normal(size=sinusoids)
    x = rng.normal(size=(size, dim))

    def target(w):
        z = x @ w  # [size]
        return z + np.sin(alpha[None, :] * z[:, None] + beta[None, :]).sum(axis=1) + rng.normal(0, noise_std, size)

    return x.astype(np.float32), target(w1).astype(np.float32), target(w2).astype(np.float32), w1, w2


@DATASETS.register("synthetic_mmoe")
class SyntheticMmoeSource(DataSource):
    """Input `feature` (default `x`, numeric [dim]); regression labels `y1` and `y2`."""

    class Config(StrictModel):
        type: Literal["synthetic_mmoe"] = Field(
            "synthetic_mmoe",
            description="the two-task regression of Ma et al. 2018 (labels `y1`, `y2`), generated from the seed",
        )
        correlation: float = Field(0.5, ge=-1.0, le=1.0, description="cosine of the task weight vectors (p)")
        dim: int = Field(100, ge=2, description="input dimension d")
        sinusoids: int = Field(10, ge=0, description="m, the sinusoids in each label")
        scale: float = Field(1.0, gt=0.0, description="c, the norm of the weight vectors")
        noise_std: float = Field(0.1, ge=0.0, description="label noise standard deviation (the paper: 0.1)")
        size: int = Field(12000, ge=10, description="examples generated")
        seed: int | None = Field(None, description="default: experiment.seed")
        feature: str = Field("x", pattern=r"^[A-Za-z][A-Za-z0-9_]*$", description="model input name")
        eval_fraction: float = Field(1 / 12, ge=0.0, lt=1.0, description="share of the examples in the eval split")
        test_fraction: float = Field(1 / 12, gt=0.0, lt=1.0, description="share of the examples in the test split")

    def load(self):
        cfg = self.config
        seed = self.seed if cfg.seed is None else cfg.seed
        x, y1, y2, _, _ = generate(cfg.size, cfg.dim, cfg.correlation, cfg.sinusoids, cfg.scale, cfg.noise_std, seed)
        fractions = {"eval": cfg.eval_fraction, "test": cfg.test_fraction, "train": 0.0}
        arrays = split_arrays({cfg.feature: x}, {"y1": y1, "y2": y2}, fractions, seed)
        labels = {"y1": LabelInfo(1, ["y1"], kind="value"), "y2": LabelInfo(1, ["y2"], kind="value")}
        return from_arrays(arrays, labels, {cfg.feature: FeatureSpec("float32", (cfg.dim,), "numeric")})
