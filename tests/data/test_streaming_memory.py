"""A streamed source's memory does not grow with its rows: the same model trained on 6,000 and on 60,000 rows of
2 KiB (512 floats), each in its own `moe-tf train` process, peaks within a few MiB of each other streamed from
TFRecord files, while the same pair held in memory (npz) grows by the data's size (which shows the pair is large
enough to see growth). A generous bound on peak RSS, not a timing; benchmarks/streaming.py measures 2 M vs 20 M rows.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.testing.processes import peak_rss_mib
from tests.conftest import REPO

WIDTH = 512


def write_rows(directory, rows, seed):
    """`rows` examples (x: WIDTH floats, y: 0/1) as a TFRecord training file + a small test file, and as one npz."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows + 500, WIDTH)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    os.makedirs(directory)
    for name, part in (("train.tfrecord", slice(0, rows)), ("test.tfrecord", slice(rows, None))):
        with tf.io.TFRecordWriter(os.path.join(directory, name)) as writer:
            for xi, yi in zip(x[part], y[part]):
                feature = {
                    "x": tf.train.Feature(float_list=tf.train.FloatList(value=xi)),
                    "y": tf.train.Feature(int64_list=tf.train.Int64List(value=[yi])),
                }
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    np.savez(os.path.join(directory, "all.npz"), x=x, y=y)


def config(directory, kind) -> str:
    if kind == "tfrecord":
        source = {
            "type": "tfrecord",
            "train": os.path.join(directory, "train.tfrecord"),
            "test": os.path.join(directory, "test.tfrecord"),
            "features": {"x": {"modality": "numeric", "shape": [WIDTH]}},
            "labels": {"y": {"num_classes": 2}},
        }
    else:
        rows = len(np.load(os.path.join(directory, "all.npz"))["y"])
        source = {
            "type": "npz",
            "path": os.path.join(directory, "all.npz"),
            "features": ["x"],
            "labels": ["y"],
            "eval_fraction": 0.0,
            "test_fraction": 500 / rows,
        }
    data = {
        "experiment": {"name": "memory", "seed": 1},
        "data": {"sources": {"d": source}, "shuffle_buffer": 1000},
        "tasks": [{"name": "y", "dataset": "d", "label": "y", "type": "binary"}],
        "model": {"architecture": "shared_bottom", "trunk": {"units": [16]}, "tower": {"units": [8]}},
        "training": {"steps": 40, "batch_size": 256},
        "logging": {"progress": "none", "tensorboard": False},
    }
    path = os.path.join(directory, f"{kind}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


def peak(config_path, run_dir) -> float:
    mib, err = peak_rss_mib("train", "--config", config_path, "--output-dir", run_dir, "--no-export", cwd=REPO)
    assert mib is not None, err[-3000:]
    return mib


@pytest.mark.slow
def test_streamed_memory_does_not_grow_with_the_rows(tmp_path):
    peaks = {}
    for rows in (6_000, 60_000):
        directory = str(tmp_path / str(rows))
        write_rows(directory, rows, seed=rows)
        for kind in ("tfrecord", "npz"):
            peaks[kind, rows] = peak(config(directory, kind), str(tmp_path / f"run-{kind}-{rows}"))
    data_mib = 54_000 * WIDTH * 4 / 2**20  # the rows the large set has beyond the small one: 105 MiB
    assert peaks["npz", 60_000] - peaks["npz", 6_000] > data_mib, peaks  # held in memory: grows by the data
    assert peaks["tfrecord", 60_000] - peaks["tfrecord", 6_000] < data_mib / 4, peaks  # streamed: it does not
