"""Users' own arrays in one `.npz` file: numeric (or image) features and integer or float labels."""

from __future__ import annotations

import os
import zipfile
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from moe_tf.config.base import StrictModel, check_identifiers, check_label_keys
from moe_tf.data.base import WEIGHT_SUFFIX, DataSource, FeatureSpec, LabelInfo, from_arrays, split_arrays
from moe_tf.data.categorical import CategoricalColumn
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS


@DATASETS.register("npz")
class NpzSource(DataSource):
    """Arrays of one `.npz` file (`numpy.savez`), loaded without pickle.

    Each key in `features` becomes a model input of that name: float or integer arrays `[N, ...]` of any shape
    (modality `numeric`, fed as float32), or uint8 images `[N, H, W(, C)]` when `modality` says `image`.
    Each key in `labels` is a label column tasks can read: integers are class ids (`-1` = missing), floats are
    regression targets (`NaN` = missing). Train / eval / test are a seeded split.
    """

    class Config(StrictModel):
        type: Literal["npz"] = Field(
            "npz",
            description="your own arrays in one `.npz` (features `[N, ...]`, labels `[N]`); loaded without pickle; "
            "seeded split",
        )
        path: str = Field(..., min_length=1, description="the `.npz` file")
        features: list[str] = Field(
            ..., min_length=1, description="array keys of the features `[N, ...]`, each a model input"
        )
        labels: list[str] = Field(
            ...,
            min_length=1,
            description="array keys of the labels `[N]`: integers are class ids (-1 = missing), floats are "
            "regression targets (NaN = missing)",
        )
        modality: dict[str, Literal["numeric", "image", "categorical"]] = Field(
            default_factory=dict,
            description="`{key: numeric|image|categorical}` per feature (default numeric; images are uint8 "
            "`[N, H, W(, C)]`)",
        )
        categorical: dict[str, CategoricalColumn] = Field(
            default_factory=dict, description="options of the categorical features (modality: categorical)"
        )
        missing: list[str | int] = Field(
            default_factory=list, description="values of categorical features that mean missing (e.g. -1, '')"
        )
        weights: dict[str, str] = Field(default_factory=dict, description="label → the key of its sample weights")
        eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the examples in the eval split")
        test_fraction: float = Field(0.2, gt=0.0, lt=1.0, description="share of the examples in the test split")

        @field_validator("features")
        @classmethod
        def _features(cls, v):
            return check_identifiers(v, "feature", "; rename the array")

        @field_validator("labels")
        @classmethod
        def _labels(cls, v):
            return check_identifiers(v, "label", "; rename the array")

        @model_validator(mode="after")
        def _weights(self):
            check_label_keys(self.weights, self.labels, "weights")
            for key in self.modality:
                if key not in self.features:
                    raise ValueError(f"modality.{key}: not one of the features ({', '.join(self.features)})")
            for key, column in self.categorical.items():
                if self.modality.get(key) != "categorical":
                    raise ValueError(f"categorical.{key}: the feature needs `modality: {{{key}: categorical}}`")
                if column.column is not None:
                    raise ValueError(f"categorical.{key}.column: an npz feature reads the array of its own name")
            return self

    def load(self):
        cfg = self.config
        where = f"data.sources.{self.name}"
        arrays = self._read(where)
        n = {key: len(a) if a.ndim else 0 for key, a in arrays.items()}
        if len(set(n.values())) > 1:
            raise DataError(
                f"{cfg.path}: arrays have different lengths: " + ", ".join(f"{k} {v}" for k, v in n.items())
            )
        features, specs = {}, {}
        for key in cfg.features:
            features[key], specs[key] = self._feature(key, arrays[key], cfg.modality.get(key, "numeric"))
        labels, infos = {}, {}
        for key in cfg.labels:
            labels[key], infos[key] = self._label(key, arrays[key])
        for label, key in cfg.weights.items():
            labels[label + WEIGHT_SUFFIX] = self._weights(key, arrays[key])
            infos[label + WEIGHT_SUFFIX] = LabelInfo(1, [], kind="weight")
        if cfg.eval_fraction + cfg.test_fraction >= 1.0:
            raise DataError(
                f"{where}: eval_fraction + test_fraction must leave examples for training, "
                f"got {cfg.eval_fraction} + {cfg.test_fraction}"
            )
        fractions = {"eval": cfg.eval_fraction, "test": cfg.test_fraction, "train": 0.0}
        data = from_arrays(split_arrays(features, labels, fractions, self.seed), infos, specs)
        data.sample_weights = {label: label + WEIGHT_SUFFIX for label in cfg.weights}
        return data

    def _weights(self, key: str, a: np.ndarray) -> np.ndarray:
        path = self.config.path
        if a.ndim != 1 or not np.issubdtype(a.dtype, np.number):
            raise DataError(
                f"{path}: sample weights {key!r} must be numbers of shape [N], got {a.dtype} {list(a.shape)}"
            )
        a = a.astype(np.float32)
        bad = ~np.isfinite(a) | (a < 0)
        if bad.any():
            raise DataError(
                f"{path}: sample weights {key!r} has {float(a[bad][0])} at example "
                f"{int(np.argmax(bad))}; weights are finite and >= 0"
            )
        return a

    def _read(self, where: str) -> dict[str, np.ndarray]:
        cfg = self.config
        if not os.path.isfile(cfg.path):
            raise DataError(f"npz file not found: {cfg.path} ({where}.path)")
        try:
            with np.load(cfg.path, allow_pickle=False) as f:
                if not hasattr(f, "files"):
                    raise DataError(
                        f"{cfg.path}: expected an .npz archive of named arrays (numpy.savez), got a single .npy array"
                    )
                out = {}
                keys = cfg.features + cfg.labels + list(cfg.weights.values())
                fields = (
                    [f"features[{i}]" for i in range(len(cfg.features))]
                    + [f"labels[{i}]" for i in range(len(cfg.labels))]
                    + [f"weights.{k}" for k in cfg.weights]
                )
                for key, field in zip(keys, fields):
                    if key not in f.files:
                        raise DataError(
                            f"{cfg.path}: no array {key!r} ({where}.{field}); "
                            f"the file has: {', '.join(sorted(f.files)) or '(none)'}"
                        )
                    out[key] = f[key]
                return out
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
            raise DataError(f"cannot read {cfg.path} as .npz: {e}") from None

    def _feature(self, key: str, a: np.ndarray, modality: str) -> tuple[np.ndarray, FeatureSpec]:
        path = self.config.path
        if a.ndim == 0:
            raise DataError(f"{path}: feature {key!r} is a scalar; expected one row per example [N, ...]")
        if modality == "categorical":
            return self._categorical(key, a)
        if modality == "image":
            if a.ndim == 3:
                a = a[..., None]
            if a.ndim != 4 or not np.issubdtype(a.dtype, np.integer) or (a.size and (a.min() < 0 or a.max() > 255)):
                raise DataError(
                    f"{path}: image feature {key!r} must be integers 0-255 of shape [N, H, W(, C)], "
                    f"got {a.dtype} {list(a.shape)}"
                )
            return a.astype(np.uint8), FeatureSpec("uint8", tuple(a.shape[1:]), "image")
        if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.issubdtype(a.dtype, np.complexfloating):
            raise DataError(f"{path}: feature {key!r} has dtype {a.dtype}; expected integers or floats")
        a = a.astype(np.float32)
        bad = ~np.isfinite(a)
        if bad.any():
            rows = np.unique(np.nonzero(bad.reshape(len(a), -1))[0])
            raise DataError(
                f"{path}: feature {key!r} has {int(bad.sum())} NaN or infinite values "
                f"in {len(rows)} examples (first: example {int(rows[0])}); features cannot be missing"
            )
        return a, FeatureSpec("float32", tuple(a.shape[1:]), "numeric")

    def _categorical(self, key: str, a: np.ndarray) -> tuple[np.ndarray, FeatureSpec]:
        cfg = self.config
        if a.ndim != 1:
            raise DataError(f"{cfg.path}: categorical feature {key!r} must have shape [N], got {list(a.shape)}")
        options = cfg.categorical.get(key, CategoricalColumn()).options([str(m) for m in cfg.missing])
        if np.issubdtype(a.dtype, np.integer) or a.dtype == np.bool_:
            return a.astype(np.int64), FeatureSpec("int64", (), "categorical", options)
        if a.dtype.kind in "US":
            values = a.astype(str).astype(object)
            return np.array([v.strip() for v in values], dtype=object), FeatureSpec(
                "string", (), "categorical", options
            )
        raise DataError(f"{cfg.path}: categorical feature {key!r} has dtype {a.dtype}; expected integer ids or strings")

    def _label(self, key: str, a: np.ndarray) -> tuple[np.ndarray, LabelInfo]:
        path = self.config.path
        if a.ndim != 1:
            raise DataError(f"{path}: label {key!r} must have shape [N], got {list(a.shape)}")
        if np.issubdtype(a.dtype, np.floating):
            if np.isinf(a).any():
                raise DataError(f"{path}: label {key!r} has infinite values (NaN marks a missing target)")
            return a.astype(np.float32), LabelInfo(1, [key], kind="value")
        if a.dtype == np.bool_:
            a = a.astype(np.int64)
        if not np.issubdtype(a.dtype, np.integer):
            raise DataError(f"{path}: label {key!r} has dtype {a.dtype}; expected integer class ids or float targets")
        a = a.astype(np.int64)
        if (a < -1).any():
            raise DataError(f"{path}: label {key!r} has value {int(a[a < -1][0])}; class ids are >= 0 (-1 = missing)")
        num_classes = max(int(a.max()) + 1 if a.size else 0, 2)
        return a, LabelInfo(num_classes, [str(c) for c in range(num_classes)])
