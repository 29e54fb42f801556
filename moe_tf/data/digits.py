"""scikit-learn's built-in 8×8 digits: the embedded default data set (no download)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from moe_tf.config.base import StrictModel, feature_name_field
from moe_tf.data.base import DataSource, LabelInfo, from_arrays, image_spec, split_arrays
from moe_tf.registry import DATASETS


@DATASETS.register("digits")
class DigitsSource(DataSource):
    """1,797 8×8 grayscale digits (0–16 intensities, rescaled to uint8 0–255) as the image feature `feature`
    (default `image`, [8, 8, 1]); one label `label` (0–9). Split by a seeded permutation into train / eval / test.
    """

    class Config(StrictModel):
        type: Literal["digits"] = Field(
            "digits",
            description="scikit-learn's 1,797 8×8 digits as the uint8 image input `feature`; label `label` (0–9); "
            "seeded split; no download",
        )
        feature: str = feature_name_field()
        eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the examples in the eval split")
        test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the examples in the test split")

    def load(self):
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # [N, 8, 8, 1]
        cfg = self.config
        fractions = {"eval": cfg.eval_fraction, "test": cfg.test_fraction, "train": 0.0}
        arrays = split_arrays({cfg.feature: images}, {"label": bunch.target}, fractions, self.seed)
        labels = {"label": LabelInfo(10, [str(i) for i in range(10)])}
        return from_arrays(arrays, labels, {cfg.feature: image_spec(images.shape[1:])})
