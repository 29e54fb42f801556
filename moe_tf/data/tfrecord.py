"""`tf.train.Example` files streamed from disk (or any path `tf.io.gfile` reads): data larger than memory.

Each split is a glob (or a list of globs) of TFRecord files, GZIP/ZLIB or plain. The features and labels are declared
in the config, or read from the `schema.json` that `moe-tf convert` writes beside its shards. Nothing is loaded into
memory: one pass over the files at the start checks every record parses (naming the file of the first one that does
not), counts each split and gathers the training split's statistics (numeric mean and variance, categorical value
counts, a sample for bucket boundaries) on the way; training reads the files again each epoch, in a seeded file order
per epoch, `cycle_length` files interleaved, through the shuffle buffer (`data.shuffle_buffer`).
"""

from __future__ import annotations

import json
import re
from typing import Literal

import numpy as np
import tensorflow as tf
from pydantic import Field, model_validator

from moe_tf.config.base import StrictModel, check_identifiers
from moe_tf.data.base import WEIGHT_SUFFIX, DataSource, FeatureSpec, LabelInfo, SourceData
from moe_tf.data.categorical import CategoricalColumn
from moe_tf.data.statistics import SourceStatistics
from moe_tf.data.streamed import PassProgress, file_sizes, match_files, reusable_splits, seeded_files, settings_of
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS

SCHEMA_VERSION = 1
_PARSE_BATCH = 512  # records parsed per parse_example call


class TfrecordFeature(StrictModel):
    """One input stored in the Examples."""

    modality: Literal["numeric", "categorical", "text", "image"] = Field(
        ..., description="`numeric`, `categorical`, `text` or `image`"
    )
    key: str | None = Field(None, min_length=1, description="the Example's feature key (default: the input's name)")
    dtype: Literal["float32", "int64", "string"] | None = Field(
        None, description="numeric: float32 (default) or int64; categorical: string (default) or int64"
    )
    shape: list[int] = Field(
        default_factory=list, description="per example: [] a scalar, [d] a vector; images [H, W, C] (required)"
    )
    nullable: bool = Field(False, description="numeric: absent or NaN values are imputed (+ a missing-indicator)")
    encoding: Literal["raw", "png", "jpeg"] = Field("raw", description="image bytes: raw uint8 [H·W·C], PNG or JPEG")

    @model_validator(mode="after")
    def _check(self):
        if any(d < 1 for d in self.shape):
            raise ValueError(f"shape {self.shape}: every dimension is >= 1")
        if self.modality == "image" and len(self.shape) != 3:
            raise ValueError(f"an image needs shape [H, W, C], got {self.shape}")
        if self.modality in ("categorical", "text") and self.shape:
            raise ValueError(f"a {self.modality} feature is one value per example: remove shape {self.shape}")
        if self.modality == "text" and self.dtype not in (None, "string"):
            raise ValueError(f"a text feature is a string, not {self.dtype}")
        if self.modality == "categorical" and self.dtype == "float32":
            raise ValueError("a categorical feature is a string or an int64 id, not float32")
        return self

    def spec(self, options: dict) -> FeatureSpec:
        if self.modality == "image":
            return FeatureSpec("uint8", tuple(self.shape), "image", {"encoding": self.encoding})
        dtype = self.dtype or ("float32" if self.modality == "numeric" else "string")
        if self.modality == "numeric":
            size = int(np.prod(self.shape)) if self.shape else 1
            numeric = {"nullable": [True] * size} if self.nullable else {}
            return FeatureSpec("float32", tuple(self.shape), "numeric", {**numeric, "stored": dtype})
        return FeatureSpec(dtype, (), self.modality, options)


class TfrecordLabel(StrictModel):
    key: str | None = Field(None, min_length=1, description="the Example's feature key (default: the label's name)")
    kind: Literal["class", "value"] = Field("class", description="class: int64 ids (absent or -1: missing); value")
    classes: list[str] | None = Field(None, min_length=1, description="class names, in id order")
    num_classes: int | None = Field(None, ge=1, description="without class names: how many classes")

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "class" and (self.classes is None) == (self.num_classes is None):
            raise ValueError("a class label needs `classes` (names in id order) or `num_classes`")
        if self.kind == "value" and (self.classes or self.num_classes):
            raise ValueError("a value label has no classes")
        return self


@DATASETS.register("tfrecord")
class TfrecordSource(DataSource):
    """TFRecord files of `tf.train.Example`s, streamed (see the module docstring)."""

    class Config(StrictModel):
        type: Literal["tfrecord"] = Field(
            "tfrecord", description="`tf.train.Example` files streamed from disk, never loaded whole"
        )
        train: str | list[str] = Field(..., description="glob(s) of the training files")
        eval: str | list[str] | None = Field(None, description="glob(s) of the eval files")
        test: str | list[str] | None = Field(None, description="glob(s) of the test files")
        schema_file: str | None = Field(
            None, description="a schema.json (what `moe-tf convert` writes) instead of `features` and `labels`"
        )
        features: dict[str, TfrecordFeature] = Field(
            default_factory=dict, description="the inputs stored in the Examples, by input name"
        )
        labels: dict[str, TfrecordLabel] = Field(
            default_factory=dict, description="the labels stored in the Examples, by label name"
        )
        categorical: dict[str, CategoricalColumn] = Field(
            default_factory=dict, description="options of categorical features (vocabulary, hashing, embedding)"
        )
        missing: list[str] = Field(default_factory=lambda: [""], description="categorical values that mean missing")
        weights: dict[str, str] = Field(default_factory=dict, description="label → the float feature of its weights")
        compression: Literal["auto", "none", "gzip", "zlib"] = Field(
            "auto", description="auto: GZIP for *.gz, ZLIB for *.zz or *.zlib, else none"
        )
        cycle_length: int = Field(4, ge=1, description="training files read at once (interleaved)")
        skip_corrupt: bool = Field(False, description="leave out (and name) files that are corrupt or truncated")
        max_rows: int | None = Field(
            None,
            ge=1,
            description="the training statistics from the first files up to this many rows; the later files are "
            "counted, not parsed",
        )

        @model_validator(mode="after")
        def _check(self):
            if self.schema_file is None and (not self.features or not self.labels):
                raise ValueError(
                    "declare `features` and `labels`, or give the `schema_file` that `moe-tf convert` wrote"
                )
            if self.schema_file is not None and (self.features or self.labels):
                raise ValueError("`schema_file` declares the features and labels: remove `features` and `labels`")
            check_identifiers(list(self.features), "feature")
            check_identifiers(list(self.labels), "label")
            for key, column in self.categorical.items():
                if key in self.features and self.features[key].modality != "categorical":
                    raise ValueError(f"categorical.{key}: feature {key!r} is {self.features[key].modality}")
                if column.column is not None:
                    raise ValueError(f"categorical.{key}.column: a TFRecord feature names its Example key as `key`")
            for label in self.weights:
                if self.labels and label not in self.labels:
                    raise ValueError(f"weights.{label}: not one of the labels ({', '.join(self.labels)})")
            return self

    def load(self) -> SourceData:
        cfg, where = self.config, f"data.sources.{self.name}"
        features, labels, keys, weights = self._schema(where)
        files = {role: match_files(getattr(cfg, role), f"{where}.{role}") for role in ("train", "eval", "test")}
        files = {role: paths for role, paths in files.items() if paths}
        parse = _parser(features, labels, keys, weights)
        compression = {role: self._compression(role, paths, where) for role, paths in files.items()}
        identity = {role: file_sizes(paths) for role, paths in files.items()}
        settings = settings_of(cfg)
        stored = reusable_splits(self.stored, self.name, identity, where, settings)
        statistics = SourceStatistics(features)
        if "train" in stored:
            kept = statistics.from_record(self.stored.of(self.name).get("statistics", {}))
            stored, statistics = (stored, kept) if kept is not None else ({}, statistics)  # None: other features
        record: dict = {"splits": {}, "settings": settings}
        sizes, skipped = {}, []
        per_file: dict[str, int] = {}
        progress = PassProgress(self.echo, where, sum(len(p) for r, p in files.items() if r not in stored))
        for role, paths in files.items():
            if role in stored:
                sizes[role], bad = stored[role]["examples"], [(p, "") for p in stored[role]["skipped"]]
                per_file.update(stored[role].get("per_file", {}))
            else:
                gather = statistics if role == "train" else None
                counts, bad = _scan(paths, parse, compression[role], gather, progress, cfg.max_rows)
                sizes[role] = sum(counts.values())
                per_file.update(counts)
            if bad and not cfg.skip_corrupt:
                path, error = bad[0]
                raise DataError(
                    f"{path}: {error} ({where}.{role}; set {where}.skip_corrupt: true to leave out such files)"
                )
            left_out = [path for path, _ in bad]
            skipped += left_out
            record["splits"][role] = {
                "files": identity[role],
                "examples": sizes[role],
                "skipped": left_out,
                "per_file": {p: per_file[p] for p in paths if p in per_file},
            }
            files[role] = [p for p in paths if p not in left_out]
            if not files[role]:
                raise DataError(f"{where}.{role}: every file is corrupt ({', '.join(paths)})")
        record["statistics"] = statistics.to_record()
        if progress.files:
            progress.end(statistics.rows, cfg.max_rows)
        for label in weights:
            labels[label + WEIGHT_SUFFIX] = LabelInfo(1, [], kind="weight")
        splits = {
            role: _records(paths, compression[role]).batch(_PARSE_BATCH).map(parse).unbatch()
            for role, paths in files.items()
        }

        def train_epoch(seed, shard=None):
            """The serialized training records of one epoch: the files in a seeded order (shard k of n: its files
            k, k + n, …), `cycle_length` at a time (called in the pipeline's epoch function, whose graph seed is
            fixed: see pipeline._epochs)."""
            return seeded_files(files["train"], seed, shard, read_train_file, cfg.cycle_length)

        def read_train_file(path):
            return tf.data.TFRecordDataset(path, compression_type=compression["train"])

        return SourceData(
            splits=splits,
            features=features,
            labels=labels,
            sizes=sizes,
            sample_weights={label: label + WEIGHT_SUFFIX for label in weights},
            train_epoch=train_epoch,
            parse=parse,
            statistics=statistics,
            skipped_files=skipped,
            pass_record=record,
            file_examples=[per_file.get(p, 0) for p in files["train"]],
        )

    # ---- the schema ----------------------------------------------------------------------------------------------

    def _schema(self, where: str):
        """({input: FeatureSpec}, {label: LabelInfo}, {input or label: Example key}, {label: weight key})."""
        cfg = self.config
        if cfg.schema_file is not None:
            return read_schema(cfg.schema_file, where, cfg.weights)
        missing = list(cfg.missing)
        features = {
            name: f.spec(
                cfg.categorical.get(name, CategoricalColumn()).options(missing) if f.modality == "categorical" else {}
            )
            for name, f in cfg.features.items()
        }
        keys = {name: f.key or name for name, f in cfg.features.items()}
        labels = {}
        for name, label in cfg.labels.items():
            keys[name] = label.key or name
            if label.kind == "value":
                labels[name] = LabelInfo(1, [name], kind="value")
            else:
                names = label.classes or [str(c) for c in range(int(label.num_classes or 0))]
                labels[name] = LabelInfo(max(len(names), 2) if label.classes is None else len(names), names)
        return features, labels, keys, dict(cfg.weights)

    def _compression(self, role: str, paths: list[str], where: str) -> str:
        """The split's compression: the setting, or (auto) by the files' extension, which must then agree."""
        kinds = {file_compression(self.config.compression, p) for p in paths}
        if len(kinds) > 1:
            raise DataError(
                f"{where}.{role}: the files mix compressions by extension "
                f"({', '.join(sorted(k or 'none' for k in kinds))}); "
                f"give one split one kind, or set {where}.compression"
            )
        return kinds.pop()


def read_schema(path: str, where: str, weights: dict[str, str] | None = None):
    """A schema.json → ({input: FeatureSpec}, {label: LabelInfo}, {name: Example key}, {label: weight key})."""
    try:
        with tf.io.gfile.GFile(path) as f:
            schema = json.load(f)
    except (OSError, tf.errors.OpError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read the schema {path} ({where}.schema_file): {e}") from None
    if schema.get("version") != SCHEMA_VERSION:
        raise DataError(f"{path}: schema version {schema.get('version')!r}; this moe-tf reads version {SCHEMA_VERSION}")
    try:
        features = {
            name: FeatureSpec(s["dtype"], tuple(s["shape"]), s["modality"], dict(s.get("options", {})))
            for name, s in schema["features"].items()
        }
        labels = {
            name: LabelInfo(int(s["num_classes"]), list(s["class_names"]), s["kind"])
            for name, s in schema["labels"].items()
        }
    except (KeyError, TypeError) as e:
        raise DataError(f"{path}: not a moe-tf schema (missing {e})") from None
    keys = {name: name for name in [*features, *labels]}
    return features, labels, keys, {**schema.get("sample_weights", {}), **(weights or {})}


def write_schema(path: str, features: dict[str, FeatureSpec], labels: dict[str, LabelInfo], weights: dict) -> None:
    schema = {
        "version": SCHEMA_VERSION,
        "features": {name: {**spec.to_dict(), "options": dict(spec.options)} for name, spec in features.items()},
        "labels": {
            name: {"kind": info.kind, "num_classes": info.num_classes, "class_names": list(info.class_names)}
            for name, info in labels.items()
            if info.kind != "weight"
        },
        "sample_weights": dict(weights),
    }
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(schema, f, indent=1)


# ---- parsing ---------------------------------------------------------------------------------------------------


def file_compression(setting: str, path: str) -> str:
    """TFRecordDataset's compression_type of a file: the setting, or (auto) GZIP for *.gz, ZLIB for *.zz/*.zlib."""
    if setting != "auto":
        return {"gzip": "GZIP", "zlib": "ZLIB", "none": ""}[setting]
    return "GZIP" if path.endswith(".gz") else "ZLIB" if path.endswith((".zz", ".zlib")) else ""


def _records(paths: list[str], compression: str) -> tf.data.Dataset:
    return tf.data.TFRecordDataset(paths, compression_type=compression)


def _parser(features: dict[str, FeatureSpec], labels: dict[str, LabelInfo], keys: dict[str, str], weights: dict):
    """serialized Examples [n] → ({input: [n, ...]}, {label: [n]})."""
    spec = {}
    for name, f in features.items():
        key = keys.get(name, name)
        if f.modality == "categorical" and f.options.get("separator"):
            spec[key] = tf.io.RaggedFeature(tf.string)
        elif f.modality == "image" or f.dtype == "string":
            spec[key] = tf.io.FixedLenFeature([], tf.string, default_value="" if f.modality != "image" else None)
        elif f.modality == "numeric":
            nullable = any(f.options.get("nullable", []))
            stored = tf.int64 if f.options.get("stored") == "int64" else tf.float32
            default = np.full(f.shape, np.nan if stored == tf.float32 else 0).tolist() if nullable else None
            spec[key] = tf.io.FixedLenFeature(list(f.shape), stored, default_value=default)
        else:  # int64 categorical ids, or a bucketed number (float)
            spec[key] = tf.io.FixedLenFeature([], tf.as_dtype(f.dtype))
    for name, info in labels.items():
        if info.kind == "weight":
            continue
        key = keys.get(name, name)
        if info.kind == "value":
            spec[key] = tf.io.FixedLenFeature([], tf.float32, default_value=float("nan"))
        else:
            spec[key] = tf.io.FixedLenFeature([], tf.int64, default_value=-1)
    for key in weights.values():
        spec[key] = tf.io.FixedLenFeature([], tf.float32, default_value=1.0)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        x = {}
        for name, f in features.items():
            v = parsed[keys.get(name, name)]
            if f.modality == "categorical" and f.options.get("separator"):
                v = tf.strings.reduce_join(v, axis=-1, separator=f.options["separator"])
            elif f.modality == "image":
                v = _decode_images(v, f)
            elif f.modality == "numeric":
                v = tf.cast(v, tf.float32)
            x[name] = v
        y = {name: parsed[keys.get(name, name)] for name, info in labels.items() if info.kind != "weight"}
        for label, key in weights.items():
            y[label + WEIGHT_SUFFIX] = parsed[key]
        return x, y

    return parse


def _decode_images(v, f: FeatureSpec):
    shape = list(f.shape)
    if f.options.get("encoding", "raw") == "raw":
        return tf.reshape(tf.io.decode_raw(v, tf.uint8), [-1, *shape])
    return tf.map_fn(
        lambda b: tf.ensure_shape(tf.io.decode_image(b, channels=shape[-1], expand_animations=False), shape),
        v,
        fn_output_signature=tf.TensorSpec(shape, tf.uint8),
    )


def _scan(paths, parse, compression, statistics, progress, max_rows=None):
    """One pass over the files: → ({path: examples} of the files that read whole, [(path, error) of files that
    failed]). Their examples are added to `statistics` when given (a corrupt file's are not: it is left out of
    training); once `statistics` holds `max_rows` rows, the later files are counted without being parsed."""
    total, bad = {}, []
    for path in paths:
        mine = statistics.empty() if statistics is not None else None
        if mine is not None and max_rows is not None and statistics.rows >= max_rows:
            mine, batches = (
                None,
                ((None, len(c)) for c in _records([path], compression).batch(4096).as_numpy_iterator()),
            )
        else:
            parsed = _records([path], compression).batch(_PARSE_BATCH).map(parse).as_numpy_iterator()
            batches = ((x, len(next(iter({**x, **y}.values())))) for x, y in parsed)
        count = 0
        try:
            for x, rows in batches:
                if mine is not None:
                    mine.add(x)
                count += rows
                progress.add(rows)
        except tf.errors.DataLossError as e:
            bad.append((path, f"corrupt or truncated after {count} records ({_first(e)})"))
            continue
        except tf.errors.InvalidArgumentError as e:
            raise DataError(
                f"{path}: a record near record {count} does not match the declared features: {_first(e)}"
            ) from None
        if count == 0 and tf.io.gfile.stat(path).length > 0:  # a GZIP file cut early can read as no records at all
            bad.append((path, "holds bytes but no complete record (corrupt or truncated)"))
            continue
        if mine is not None:
            statistics.merge(mine)
        total[path] = count
        progress.file_done()
    return total, bad


def _first(e: tf.errors.OpError) -> str:
    """The part of a parse error that names the feature (without tf.data's op names)."""
    line = e.message.strip().splitlines()[0]
    for marker in ("Feature: ", "Key: "):
        if marker in line:
            return line[line.index(marker) :]
    return re.sub(r"^\{\{.*?\}\}\s*", "", line)


def example_of(x: dict, y: dict) -> tf.train.Example:
    """One example's numpy values ({input: value}, {label: value}) → a tf.train.Example (what `convert` writes)."""
    feature = {}
    for name, v in {**x, **y}.items():
        v = np.asarray(v)
        if v.dtype == object or v.dtype.kind in "US":
            values = [s.encode() if isinstance(s, str) else bytes(s) for s in np.ravel(v)]
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif v.dtype == np.uint8:  # an image: raw bytes
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.tobytes()]))
        elif np.issubdtype(v.dtype, np.integer) or v.dtype == np.bool_:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=np.ravel(v).astype(np.int64)))
        else:
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(v).astype(np.float32)))
    return tf.train.Example(features=tf.train.Features(feature=feature))
