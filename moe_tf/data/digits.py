"""scikit-learn's built-in 8×8 handwritten digits: the embedded default data set (no download)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from moe_tf.config.base import StrictModel
from moe_tf.data import DATASETS
from moe_tf.data.base import DataSource, LabelInfo, from_arrays, split_arrays


@DATASETS.register("digits")
class DigitsSource(DataSource):
    """1,797 8×8 grayscale digits (0–16 intensities, rescaled to uint8 0–255); one label `label` (0–9).

    Split by a seeded permutation into train / eval / test.
    """

    class Config(StrictModel):
        type: Literal["digits"] = "digits"
        eval_fraction: float = Field(0.1, ge=0.0, lt=1.0)
        test_fraction: float = Field(0.2, gt=0.0, lt=1.0)

    def load(self):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # [N, 8, 8, 1]
        labels = {"label": bunch.target.astype(np.int64)}
        cfg = self.config
        fractions = {"eval": cfg.eval_fraction, "test": cfg.test_fraction, "train": 0.0}
        arrays = split_arrays(images, labels, fractions, self.seed)
        names = [str(i) for i in range(10)]
        return from_arrays(arrays, {"label": LabelInfo(10, names)})
