"""Any TFDS image- or text-classification data set by name (mnist, fashion_mnist, cifar10, imdb_reviews,
ag_news_subset, glue/sst2, …).

Users with a network let TFDS download it; offline users point `data_dir` at a prepared TFDS directory,
or `manual_dir` at the downloaded archives, and set `download: false`. A data set that would be downloaded on a
machine that cannot reach TFDS's storage fails at once (TFDS itself retries every file for minutes first).
"""

from __future__ import annotations

import os
import socket
from typing import Literal

import tensorflow as tf
from pydantic import Field, model_validator

from moe_tf.config.base import NAME_PATTERN, StrictModel
from moe_tf.data.base import DataSource, FeatureSpec, LabelInfo, SourceData, image_spec
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS

# TFDS fetches a prepared data set from Google Cloud Storage first; whether it connects decides the fast failure.
DOWNLOAD_HOST = ("storage.googleapis.com", 443)
NETWORK_CHECK_ENV = "MOE_TF_TFDS_NETWORK_CHECK"  # 0: skip the check and let TFDS try
PROXY_VARIABLES = ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")


def unreachable_reason(host: tuple[str, int] | None = None, timeout: float = 5.0) -> str | None:
    """Why `host` (default DOWNLOAD_HOST) cannot be reached (a name that does not resolve, a refused or timed-out
    connection), or None."""
    host = host or DOWNLOAD_HOST
    try:
        with socket.create_connection(host, timeout=timeout):
            return None
    except OSError as e:
        return f"cannot connect to {host[0]}:{host[1]}: {e.strerror or type(e).__name__}"


@DATASETS.register("tfds")
class TfdsSource(DataSource):
    """One input, the image at `image_key` or, with `text_key`, the text there; every `ClassLabel` feature of the
    TFDS data set becomes a label tasks can read."""

    class Config(StrictModel):
        type: Literal["tfds"] = Field(
            "tfds",
            description="any TFDS image or text classification data set (`mnist`, `fashion_mnist`, `cifar10`; with "
            "`text_key`: `imdb_reviews` (`text`), `ag_news_subset` (`description`), `glue/sst2` "
            "(`sentence`), …); every `ClassLabel` feature is a label",
        )
        name: str = Field(..., min_length=1, description="the TFDS data set, e.g. `mnist`, `cifar10`, `glue/sst2`")
        data_dir: str | None = Field(
            None, description="TFDS data directory (offline: a prepared one, with `download: false`)"
        )
        manual_dir: str | None = Field(None, description="directory of the downloaded archives (offline)")
        download: bool = Field(True, description="let TFDS download and prepare the data set")
        image_key: str = Field("image", description="the image feature read (unless `text_key`)")
        text_key: str | None = Field(
            None,
            description="read this text feature instead of an image (imdb_reviews: text, ag_news_subset: description)",
        )
        feature: str | None = Field(
            None, pattern=NAME_PATTERN, description="model input name (default: text_key or image_key)"
        )
        train_split: str = Field("train[:90%]", description="TFDS split spec of the training split")
        eval_split: str = Field("train[90%:]", description="TFDS split spec of the eval split")
        test_split: str = Field("test", description="TFDS split spec of the test split")
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

    def _check_download_possible(self) -> None:
        """Fails at once when the data set is not prepared in `data_dir`, TFDS would download it and the network is
        unreachable."""
        import tensorflow_datasets as tfds

        cfg = self.config
        if not cfg.download or cfg.manual_dir or os.environ.get(NETWORK_CHECK_ENV, "1") == "0":
            return
        if any(os.environ.get(v) for v in PROXY_VARIABLES):  # TFDS downloads through the proxy: no direct probe
            return
        try:
            builder = tfds.builder(cfg.name, data_dir=cfg.data_dir)
        except Exception:  # noqa: BLE001 - an unknown name: tfds.load reports it with its suggestions
            return
        if builder.is_prepared():
            return
        reason = unreachable_reason()
        if reason is not None:
            raise DataError(
                f"TFDS data set {cfg.name!r} (data.sources.{self.name}) is not prepared in {builder.data_dir} and "
                f"would be downloaded, but the network is unreachable ({reason}). Prepare it on a machine with a "
                f"network (a first run there, or `tfds build {cfg.name}`), copy its TFDS directory here and set "
                f"data.sources.{self.name}.data_dir to it with download: false; or set manual_dir to the "
                f"downloaded archives. ({NETWORK_CHECK_ENV}=0 skips this check.)"
            )

    def load(self):
        import tensorflow_datasets as tfds

        cfg = self.config
        kwargs = {}
        if cfg.manual_dir:
            kwargs["download_and_prepare_kwargs"] = {
                "download_config": tfds.download.DownloadConfig(manual_dir=cfg.manual_dir)
            }
        roles = {"train": cfg.train_split, "eval": cfg.eval_split, "test": cfg.test_split}
        self._check_download_possible()
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
