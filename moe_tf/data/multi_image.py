"""Multi-MNIST-style composites (Sener & Koltun 2018) from any single-label image source: two items on one canvas,
one toward the top-left and one toward the bottom-right, each shifted by a small random offset; labels `left` and
`right` carry the two items' classes.

The train split of the base source gives `pairs_per_image` composites per image (the image on the left and a random
other image of the split on the right), more pairings being the augmentation this data allows; the eval and test
splits give one per image, so their figures stay comparable across settings and with the literature's. Pixels where
the items overlap take the brighter value. Everything is drawn from `seed` (default: `experiment.seed`), so a config
always yields the same composites.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from moe_tf.config.base import NAME_PATTERN, StrictModel
from moe_tf.data.base import DataSource, LabelInfo, from_arrays, image_spec
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS

_ROLE_SEEDS = {"train": 0, "eval": 1, "test": 2}


def place(images: np.ndarray, rows: np.ndarray, cols: np.ndarray, canvas: int) -> np.ndarray:
    """Each image [n, H, W, C] on a blank canvas [n, canvas, canvas, C] with its top-left corner at (rows, cols)."""
    n, h, w, c = images.shape
    out = np.zeros((n, canvas, canvas, c), images.dtype)
    for k in range(n):
        out[k, rows[k] : rows[k] + h, cols[k] : cols[k] + w] = images[k]
    return out


def compose(left: np.ndarray, right: np.ndarray, rng, canvas: int, max_shift: int):
    """Composites of left[k] toward the top-left and right[k] toward the bottom-right.

    Returns (composites [n, canvas, canvas, C], offsets {"left": (rows, cols), "right": (rows, cols)}).
    """
    n, h, w, _ = left.shape
    shift = lambda: rng.integers(0, max_shift + 1, size=n)  # noqa: E731
    left_at = (shift(), shift())
    right_at = (canvas - h - shift(), canvas - w - shift())
    images = np.maximum(place(left, *left_at, canvas), place(right, *right_at, canvas))
    return images, {"left": left_at, "right": right_at}


@DATASETS.register("multi_image")
class MultiImageSource(DataSource):
    """Composites of the base `source` (any image source config, e.g. `{type: idx, path: ...}`)."""

    class Config(StrictModel):
        type: Literal["multi_image"] = Field(
            "multi_image",
            description="Multi-MNIST-style composites of any image source (labels `left`, `right`; Sener & Koltun "
            "2018)",
        )
        source: dict = Field(..., description="the base image source's config (any image source type)")
        label: str = Field("label", description="the base source's label to compose")
        canvas: int | None = Field(
            None, ge=1, description="canvas side (default: the item's side + 8, as 36 for 28×28 items)"
        )
        max_shift: int = Field(4, ge=0, description="each item moves up to this many pixels inward")
        pairs_per_image: int = Field(
            1, ge=1, description="composites made per training image (eval and test: one per image)"
        )
        seed: int | None = Field(None, description="default: experiment.seed")
        feature: str = Field("image", pattern=NAME_PATTERN, description="model input name")

        @field_validator("source")
        @classmethod
        def _source(cls, v):
            from pydantic import ValidationError

            kind = v.get("type")
            if kind == "multi_image" or kind not in DATASETS.keys():
                known = ", ".join(k for k in DATASETS.keys() if k != "multi_image")
                raise ValueError(f"type: expected a source type ({known}), got {kind!r}")
            try:
                DATASETS.get(kind).Config.model_validate(v)
            except ValidationError as e:
                raise ValueError(
                    "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
                ) from None
            return v

    def load(self):
        cfg = self.config
        seed = self.seed if cfg.seed is None else cfg.seed
        base_cls = DATASETS.get(cfg.source["type"])
        base = base_cls(base_cls.Config.model_validate(cfg.source), seed, f"{self.name}.source").load()
        images = [f for f, spec in base.features.items() if spec.modality == "image"]
        where = f"data.sources.{self.name}"
        if len(images) != 1:
            raise DataError(f"{where}.source: expected a source with one image input, got {sorted(base.features)}")
        if cfg.label not in base.labels or base.labels[cfg.label].kind != "class":
            raise DataError(
                f"{where}.label: the base source has no class label {cfg.label!r}; it has "
                f"{sorted(k for k, i in base.labels.items() if i.kind == 'class')}"
            )
        image = images[0]
        h, w = base.features[image].shape[:2]
        canvas = cfg.canvas or max(h, w) + 8
        if canvas < max(h, w) + cfg.max_shift:
            raise DataError(f"{where}.canvas: {canvas} cannot hold a {h}×{w} item shifted by up to {cfg.max_shift}")
        arrays = {}
        for role in base.splits:
            x, y = _arrays(base, role, image, cfg.label)
            if not len(x):
                continue
            rng = np.random.default_rng([seed, _ROLE_SEEDS.get(role, 3)])
            left = np.tile(np.arange(len(x)), cfg.pairs_per_image if role == "train" else 1)
            right = (left + rng.integers(1, max(len(x), 2), size=len(left))) % len(x)  # another image
            composites, _ = compose(x[left], x[right], rng, canvas, cfg.max_shift)
            arrays[role] = ({cfg.feature: composites}, {"left": y[left], "right": y[right]})
        info = base.labels[cfg.label]
        labels = {side: LabelInfo(info.num_classes, list(info.class_names)) for side in ("left", "right")}
        channels = base.features[image].shape[2]
        return from_arrays(arrays, labels, {cfg.feature: image_spec((canvas, canvas, channels))})


def _arrays(base, role: str, image: str, label: str) -> tuple[np.ndarray, np.ndarray]:
    """A split's images and labels as numpy (in-memory sources have them; others, e.g. TFDS, are read once)."""
    if base.arrays:
        x, y = base.arrays[role]
        return x[image], y[label]
    xs, ys = [], []
    for x, y in base.splits[role].batch(4096).as_numpy_iterator():
        xs.append(x[image])
        ys.append(y[label])
    if not xs:
        return np.zeros((0, *base.features[image].shape), np.uint8), np.zeros((0,), np.int64)
    return np.concatenate(xs), np.concatenate(ys)
