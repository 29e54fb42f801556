"""`moe-tf convert`: every source of a config written as sharded TFRecord files per split, a schema.json per source,
and `DIR/config.yaml`, the same experiment reading the shards (`moe-tf train --config DIR/config.yaml`).

Each split keeps its examples in order, cut into up to `shards` contiguous files (GZIP). Labels keep their missing
markers (-1, NaN), sample weights travel as their own float feature, features keep their options (categorical
settings, log1p, missing-value columns), so the converted run computes what the original one does.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf
import yaml

from moe_tf.data.base import SourceData
from moe_tf.data.pipeline import build_task_data
from moe_tf.data.tfrecord import example_of, write_schema
from moe_tf.errors import MoeTfError

ROLES = ("train", "eval", "test")


def convert(config, output: str, shards: int = 8, echo=print, raw: dict | None = None) -> str:
    """Writes the shards, schemas and config under `output` (which must not exist yet; written to a temporary
    sibling and renamed at the end, so an error or a kill leaves no half-written directory). Returns the path of the
    new config: `raw` (the config as written, bases merged; default: the resolved config) with each converted
    source replaced by its `tfrecord` source."""
    if shards < 1:
        raise MoeTfError(f"--shards: expected at least 1, got {shards}")
    if os.path.exists(output):
        raise MoeTfError(f"--output {output} exists; give a new directory (nothing was written)")
    parent = os.path.dirname(os.path.abspath(output))
    if not os.path.isdir(parent):
        raise MoeTfError(f"--output {output}: the directory {parent} does not exist")
    data = build_task_data(config)
    work = tempfile.mkdtemp(prefix=".convert-", dir=parent)
    try:
        sources = {}
        for name, source in data.sources.items():
            sources[name] = _write_source(name, source, work, output, shards, echo)
        new = copy.deepcopy(raw) if raw is not None else config.model_dump()
        for name, entry in sources.items():
            new["data"]["sources"][name] = entry
        path = os.path.join(work, "config.yaml")
        with open(path, "w") as f:
            f.write(f"# moe-tf train --config {os.path.join(output, 'config.yaml')}\n")
            f.write(
                f"# written by moe-tf convert from {config.experiment.name}: the same experiment on TFRecord shards\n"
            )
            yaml.safe_dump(new, f, sort_keys=False)
        os.replace(work, output)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return os.path.join(output, "config.yaml")


def _write_source(name: str, source: SourceData, work: str, output: str, shards: int, echo) -> dict:
    """Writes one source's splits and schema; returns its `tfrecord` source config (paths under `output`)."""
    os.makedirs(os.path.join(work, name))
    entry: dict = {"type": "tfrecord"}
    for role in ROLES:
        if source.sizes.get(role, 0) <= 0 or role not in source.splits:
            continue
        n = source.sizes[role]
        count = min(shards, n)
        bounds = np.linspace(0, n, count + 1).astype(int)
        examples = _examples(source, role)
        for k in range(count):
            file = f"{role}-{k:05d}-of-{count:05d}.tfrecord.gz"
            with tf.io.TFRecordWriter(os.path.join(work, name, file), options="GZIP") as writer:
                for _ in range(bounds[k + 1] - bounds[k]):
                    writer.write(example_of(*next(examples)).SerializeToString())
        entry[role] = os.path.join(output, name, f"{role}-*-of-{count:05d}.tfrecord.gz")
        echo(f"{name} {role}: {n:,} examples in {count} file(s)")
    write_schema(os.path.join(work, name, "schema.json"), source.features, source.labels, source.sample_weights)
    entry["schema_file"] = os.path.join(output, name, "schema.json")
    return entry


def _examples(source: SourceData, role: str):
    """The examples of a split in order, one ({input: value}, {label: value}) at a time."""
    if source.arrays:
        x, y = source.arrays[role]
        for i in range(len(next(iter(y.values())))):
            yield {k: v[i] for k, v in x.items()}, {k: v[i] for k, v in y.items()}
    else:
        yield from source.splits[role].as_numpy_iterator()
