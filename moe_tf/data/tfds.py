"""Any TFDS image- or text-classification data set by name (mnist, fashion_mnist, cifar10, imdb_reviews,
ag_news_subset, glue/sst2, …).

Users with a network let TFDS download it; offline users point `data_dir` at a prepared TFDS directory,
or `manual_dir` at the downloaded archives, and set `download: false`.
"""

from __future__ import annotations

from typing import Literal

import tensorflow as tf
from pydantic import Field, model_validator

from moe_tf.config.base import NAME_PATTERN, StrictModel
from moe_tf.data.base import DataSource, FeatureSpec, LabelInfo, SourceData, image_spec
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS


@DATASETS.register("tfds")
class TfdsSource(DataSource):
    """One input, the image at `image_key` or, with `text_key`, the text there; every `ClassLabel` feature of the
    TFDS data set becomes a label tasks can read."""

    class Config(StrictModel):
        type: Literal["tfds"] = "tfds"
        name: str = Field(..., min_length=1)
        data_dir: str | None = None
        manual_dir: str | None = None
        download: bool = True
        image_key: str = "image"
        text_key: str | None = Field(
            None,
            description="read this text feature instead of an image (imdb_reviews: text, ag_news_subset: description)",
        )
        feature: str | None = Field(
            None, pattern=NAME_PATTERN, description="model input name (default: text_key or image_key)"
        )
        train_split: str = "train[:90%]"
        eval_split: str = "train[90%:]"
        test_split: str = "test"
        token_dropout: float = Field(
            0.0,
            ge=0.0,
            lt=1.0,
            description="with `text_key`, training batches only: each token is deleted with this chance (word dropout)",
        )

        @model_validator(mode="after")
        def _check(self):
            if self.token_dropout and not self.text_key:
                raise ValueError(f"token_dropout={self.token_dropout} needs `text_key` (a text data set)")
            return self

    def load(self):
        import tensorflow_datasets as tfds

        cfg = self.config
        kwargs = {}
        if cfg.manual_dir:
            kwargs["download_and_prepare_kwargs"] = {
                "download_config": tfds.download.DownloadConfig(manual_dir=cfg.manual_dir)
            }
        roles = {"train": cfg.train_split, "eval": cfg.eval_split, "test": cfg.test_split}
        try:
            datasets, info = tfds.load(
                cfg.name,
                split=list(roles.values()),
                data_dir=cfg.data_dir,
                download=cfg.download,
                with_info=True,
                shuffle_files=False,
                **kwargs,
            )
        except Exception as e:  # TFDS raises many types: unknown name, missing files, no network …
            raise DataError(
                f"cannot load TFDS data set {cfg.name!r} (splits {list(roles.values())}, data_dir={cfg.data_dir}): "
                f"{type(e).__name__}: {e}. Offline? Prepare it elsewhere and set data_dir, "
                "or set manual_dir and download: false."
            ) from None
        features = info.features
        key = cfg.text_key or cfg.image_key
        if key not in features:
            raise DataError(
                f"TFDS {cfg.name!r} has no feature {key!r} "
                f"(data.sources.{self.name}.{'text_key' if cfg.text_key else 'image_key'}); "
                f"it has {sorted(features.keys())}"
            )
        labels = {
            k: LabelInfo(feat.num_classes, list(feat.names))
            for k, feat in features.items()
            if isinstance(feat, tfds.features.ClassLabel)
        }
        feature = cfg.feature or key
        if cfg.text_key:
            if not isinstance(features[key], tfds.features.Text):
                raise DataError(
                    f"TFDS {cfg.name!r}: feature {key!r} is {type(features[key]).__name__}, not Text "
                    f"(data.sources.{self.name}.text_key)"
                )
            spec = FeatureSpec("string", (), "text")
        else:
            shape = tuple(features[key].shape)
            if None in shape or len(shape) != 3:
                raise DataError(f"TFDS {cfg.name!r}: image shape {shape} must be fixed [H, W, C]")
            spec = image_spec(shape)

        def select(example):
            x = example[key] if cfg.text_key else tf.cast(example[key], tf.uint8)
            return {feature: x}, {k: tf.cast(example[k], tf.int64) for k in labels}

        splits, sizes = {}, {}
        for (role, split), ds in zip(roles.items(), datasets):
            splits[role] = ds.map(select, num_parallel_calls=tf.data.AUTOTUNE)
            try:
                sizes[role] = int(info.splits[split].num_examples)
            except Exception:  # sizes of sliced splits are not always known
                sizes[role] = 0
            if sizes[role] <= 0:  # no metadata: count once
                sizes[role] = int(ds.reduce(0, lambda count, _: count + 1))
        return SourceData(splits=splits, features={feature: spec}, labels=labels, sizes=sizes)
