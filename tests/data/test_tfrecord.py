"""Streamed TFRecord sources and `moe-tf convert`: the round trip keeps every example, label, missing-label marker
and sample weight; streaming gives the batches the in-memory source gives; one pass gathers the statistics; bad
files get clear errors; a resumed streamed run ends where an uninterrupted one does."""

from __future__ import annotations

import gzip
import json
import os

import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.convert import convert
from moe_tf.data.pipeline import build_task_data
from moe_tf.errors import DataError, MoeTfError
from moe_tf.testing.files import write_census_csv
from tests.conftest import census_dict, run_main, straight_and_resumed


def weighted_npz(path, n=240, seed=0):
    """Numeric features, a class label with missing (-1) entries, a regression target with NaN, sample weights."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype(np.float32)
    kind = np.where(x[:, 0] > 0, 1, 0)
    kind[::7] = -1
    score = (x[:, 1] * 2).astype(np.float32)
    score[::5] = np.nan
    np.savez(path, x=x, kind=kind, score=score, w=rng.uniform(0.5, 2.0, n).astype(np.float32))
    return str(path)


def npz_dict(path, **sections):
    base = {
        "experiment": {"name": "npz", "seed": 3},
        "data": {
            "sources": {
                "tab": {
                    "type": "npz",
                    "path": path,
                    "features": ["x"],
                    "labels": ["kind", "score"],
                    "weights": {"kind": "w"},
                }
            },
            "shuffle_buffer": 10_000,
        },
        "tasks": [
            {"name": "kind", "dataset": "tab", "label": "kind", "type": "binary"},
            {"name": "score", "dataset": "tab", "label": "score", "type": "regression"},
        ],
        "model": {"architecture": "mmoe", "experts": {"count": 2, "units": [8]}, "tower": {"units": [4]}},
        "training": {"epochs": 2, "batch_size": 16},
        "logging": {"progress": "none", "tensorboard": False},
    }
    for key, value in sections.items():
        base[key] = {**base.get(key, {}), **value}
    return base


def converted(tmp_path, data: dict, shards=1, name="shards"):
    """The config dict `moe-tf convert` writes for `data` (shards under tmp_path/name)."""
    path = convert(validate_config(data), str(tmp_path / name), shards, echo=lambda line: None, raw=data)
    with open(path) as f:
        return yaml.safe_load(f)


def split_arrays_of(source, role):
    xs, ys = [], []
    for x, y in source.splits[role].batch(10_000).as_numpy_iterator():
        xs.append(x)
        ys.append(y)
    return {k: np.concatenate([x[k] for x in xs]) for k in xs[0]}, {
        k: np.concatenate([y[k] for y in ys]) for k in ys[0]
    }


def assert_same_arrays(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        if a[k].dtype == object or a[k].dtype.kind in "SU":
            assert [str(v.decode() if isinstance(v, bytes) else v) for v in b[k]] == [str(v) for v in a[k]], k
        else:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)


@pytest.mark.parametrize("which", ["npz", "csv"])
def test_convert_round_trip_keeps_examples_labels_missing_markers_and_weights(tmp_path, which):
    if which == "npz":
        data = npz_dict(weighted_npz(tmp_path / "t.npz"))
    else:
        data = census_dict(write_census_csv(tmp_path / "c.csv", n=500))
        data["data"]["sources"]["census"]["buckets"] = {"age": 4}
    original = build_task_data(validate_config(data))
    streamed = build_task_data(validate_config(converted(tmp_path, data, shards=3)))
    for name, source in original.sources.items():
        other = streamed.sources[name]
        assert (
            other.arrays == {} and other.features == source.features and other.sample_weights == source.sample_weights
        )
        assert {k: (v.num_classes, v.class_names, v.kind) for k, v in other.labels.items()} == {
            k: (v.num_classes, v.class_names, v.kind) for k, v in source.labels.items()
        }
        for role in ("train", "eval", "test"):
            assert other.sizes[role] == source.sizes[role]
            x, y = split_arrays_of(other, role)
            assert_same_arrays(source.arrays[role][0], x)
            assert_same_arrays(source.arrays[role][1], y)
    if which == "npz":  # the markers survived: -1 class ids, NaN targets; weights as written
        y = original.sources["tab"].arrays["train"][1]
        assert (y["kind"] == -1).any() and np.isnan(y["score"]).any()


def test_streaming_gives_the_in_memory_batches_and_statistics(tmp_path):
    """One shard and a shuffle buffer as large as the split: the streamed epochs are the in-memory ones, batch for
    batch (tf.data's shuffle draws the same order whatever it shuffles); the statistics of its one pass equal the
    in-memory ones, and so do the model's vocabularies and normalisation."""
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=400))
    data["data"]["sources"]["census"]["buckets"] = {"age": 4}
    data["data"]["shuffle_buffer"] = 10_000
    memory = build_components(validate_config(data), training=False)
    stream = build_components(validate_config(converted(tmp_path, data)), training=False)
    per_epoch = memory.data.steps_per_epoch(32)
    a = list(memory.data.train_dataset(32, 0, 2 * per_epoch + 3))
    b = list(stream.data.train_dataset(32, 0, 2 * per_epoch + 3))
    assert len(a) == len(b) == 2 * per_epoch + 3
    for (xa, ya, wa), (xb, yb, wb) in zip(a, b):
        for k in xa:
            np.testing.assert_array_equal(xa[k].numpy(), xb[k].numpy(), err_msg=k)
        for k in ya:
            np.testing.assert_array_equal(ya[k].numpy(), yb[k].numpy(), err_msg=k)
            np.testing.assert_array_equal(wa[k].numpy(), wb[k].numpy(), err_msg=k)
    for f in ("city", "plan"):
        assert memory.model.preprocessors(f)[0].vocabulary() == stream.model.preprocessors(f)[0].vocabulary()
    for m, s in zip(memory.data.feature_statistics("numeric"), stream.data.feature_statistics("numeric")):
        np.testing.assert_allclose(m, s, rtol=1e-6)
    np.testing.assert_allclose(
        memory.model.preprocessors("age_bucket")[0].boundaries.numpy(),
        stream.model.preprocessors("age_bucket")[0].boundaries.numpy(),
    )
    assert stream.data.sources["census"].statistics.rows == stream.data.sources["census"].sizes["train"]


def test_convert_then_train_from_the_command_line_matches_the_in_memory_run(tmp_path, capsys):
    data = npz_dict(weighted_npz(tmp_path / "t.npz"))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    code, out, err = run_main(
        capsys, "convert", "--config", tmp_path / "c.yaml", "--output", tmp_path / "s", "--shards", "1"
    )
    assert code == 0, err
    assert f"wrote {tmp_path / 's' / 'config.yaml'}" in out
    assert (
        (tmp_path / "s" / "config.yaml")
        .read_text()
        .startswith(f"# moe-tf train --config {tmp_path / 's' / 'config.yaml'}")
    )
    metrics = {}
    for name, config in (("memory", tmp_path / "c.yaml"), ("stream", tmp_path / "s" / "config.yaml")):
        code, _, err = run_main(capsys, "train", "--config", config, "--output-dir", tmp_path / name, "--no-export")
        assert code == 0, err[-3000:]
        metrics[name] = json.loads((tmp_path / name / "metrics.json").read_text())
    assert metrics["stream"]["step"] == metrics["memory"]["step"] > 0
    for task, values in metrics["memory"]["tasks"].items():
        for metric, value in values.items():
            assert metrics["stream"]["tasks"][task][metric] == pytest.approx(value, abs=1e-6), (task, metric)
    # the output exists now: convert refuses to write into it
    code, _, err = run_main(capsys, "convert", "--config", tmp_path / "c.yaml", "--output", tmp_path / "s")
    assert code == 1 and "exists; give a new directory (nothing was written)" in err


def test_a_resumed_streamed_run_ends_where_an_uninterrupted_one_does(tmp_path, capsys):
    data = census_dict(write_census_csv(tmp_path / "c.csv", n=400), training={"steps": 16, "checkpoint_every": 8})
    data["data"]["shuffle_buffer"] = 64  # smaller than the split: the streamed order is its own
    config = tmp_path / "s.yaml"
    config.write_text(yaml.safe_dump(converted(tmp_path, data, shards=4)))
    a, b = straight_and_resumed(capsys, config, tmp_path, 16)
    assert a.keys() == b.keys() and len(a) > 5
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_the_pass_is_kept_in_the_run_and_read_by_resume_and_evaluate_and_changed_files_are_refused(
    tmp_path, capsys, monkeypatch
):
    import moe_tf.data.tfrecord as tfrecord

    data = census_dict(write_census_csv(tmp_path / "c.csv", n=300), training={"steps": 4, "checkpoint_every": 2})
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(converted(tmp_path, data, shards=3)))
    run = tmp_path / "run"
    code, _, err = run_main(capsys, "train", "--config", tmp_path / "s.yaml", "--output-dir", run, "--no-export")
    assert code == 0, err[-3000:]
    record = json.loads((run / "data_statistics.json").read_text())["sources"]["census"]
    train = record["splits"]["train"]
    assert len(train["files"]) == 3 and record["statistics"]["rows"] == train["examples"] > 0
    assert set(record["statistics"]["counts"]) == {"city", "plan"}

    def no_pass(*args):
        raise AssertionError("the pass over the files was made again")

    monkeypatch.setattr(tfrecord, "_scan", no_pass)
    resume = ["train", "--config", run / "config.yaml", "--output-dir", run, "--resume", "--no-export"]
    code, out, err = run_main(capsys, *resume, "--set", "training.steps=6", "--set", "logging.progress=lines")
    assert code == 0, err[-3000:]
    assert "statistics and counts are read from data_statistics.json" in err
    code, out, err = run_main(capsys, "evaluate", run, "--json")
    assert code == 0, err[-3000:]
    before = json.loads(out)["tasks"]

    # A training file gone: evaluate keeps the stored statistics (the model's); --resume refuses, naming the file.
    gone = train["files"][-1][0]
    os.remove(gone)
    code, out, err = run_main(capsys, "evaluate", run, "--json")
    assert code == 0, err[-3000:]
    assert json.loads(out)["tasks"] == before
    code, _, err = run_main(capsys, *resume, "--set", "training.steps=8")
    assert (
        code == 1 and f"the train files of data.sources.census changed since the run started (1 removed: {gone})" in err
    )
    assert "--allow-data-change" in err
    monkeypatch.undo()
    code, _, err = run_main(capsys, *resume, "--set", "training.steps=8", "--allow-data-change")
    assert code == 0, err[-3000:]
    record = json.loads((run / "data_statistics.json").read_text())["sources"]["census"]
    assert len(record["splits"]["train"]["files"]) == 2 and record["statistics"]["rows"] < train["examples"]


def declared(tmp_path, records: list[dict], **source):
    """A tfrecord source config over one file of the given Examples ({key: python list})."""
    path = tmp_path / "d.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as w:
        for r in records:
            feature = {}
            for k, v in r.items():
                if isinstance(v[0], bytes):
                    feature[k] = tf.train.Feature(bytes_list=tf.train.BytesList(value=v))
                elif isinstance(v[0], int):
                    feature[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=v))
                else:
                    feature[k] = tf.train.Feature(float_list=tf.train.FloatList(value=v))
            w.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    entry = {
        "type": "tfrecord",
        "train": str(path),
        "test": str(path),
        "features": {"price": {"modality": "numeric", "shape": [2]}, "tags": {"modality": "categorical"}},
        "labels": {"click": {"num_classes": 2}},
        **source,
    }
    return {
        "experiment": {"name": "d", "seed": 1},
        "data": {"sources": {"d": entry}},
        "tasks": [{"name": "click", "dataset": "d", "label": "click", "type": "binary"}],
        "model": {"architecture": "shared_bottom", "tower": {"units": [4]}},
        "training": {"epochs": 1, "batch_size": 4},
        "logging": {"progress": "none", "tensorboard": False},
    }


def rows(n=12, **overrides):
    return [
        {
            "price": [float(i), float(i % 3)],
            "tags": [b"a|b" if i % 2 else b"c"],
            "click": [i % 2],
            **{k: v(i) for k, v in overrides.items()},
        }
        for i in range(n)
    ]


def test_declared_features_multi_valued_values_and_absent_labels(tmp_path):
    records = rows()
    del records[3]["click"]  # an absent label is a missing one
    records[5]["tags"] = [b"b", b"d"]  # a list of values reads as the values joined by the separator
    data = declared(tmp_path, records, categorical={"tags": {"separator": "|"}})
    source = build_task_data(validate_config(data)).sources["d"]
    x, y = split_arrays_of(source, "train")
    assert y["click"].tolist() == [0, 1, 0, -1, 0, 1, 0, 1, 0, 1, 0, 1]
    assert [t.decode() for t in x["tags"][4:6]] == ["c", "b|d"]
    assert source.statistics.counts["tags"] == {"a": 5, "b": 6, "c": 6, "d": 1}
    np.testing.assert_array_equal(x["price"][2], [2.0, 2.0])


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda d, p: d["data"]["sources"]["d"].update(train=str(p / "nothing-*.tfrecord")),
            "data.sources.d.train: '{p}/nothing-*.tfrecord' matches no file",
        ),
        (
            lambda d, p: d["data"]["sources"]["d"]["features"].update(size={"modality": "numeric"}),
            "{p}/d.tfrecord: a record near record 0 does not match the declared features: "
            "Feature: size (data type: float) is required but could not be found.",
        ),
        (
            lambda d, p: d["data"]["sources"]["d"]["features"]["price"].update(shape=[3]),
            "{p}/d.tfrecord: a record near record 0 does not match the declared features: "
            "Key: price, Index: 0.  Number of float values != expected.  Values size: 2 but output shape: [3]",
        ),
        (
            lambda d, p: d["data"]["sources"]["d"]["features"]["price"].update(dtype="int64"),
            "{p}/d.tfrecord: a record near record 0 does not match the declared features",
        ),
    ],
)
def test_bad_files_and_declarations_name_the_file_and_the_feature(tmp_path, change, message):
    data = declared(tmp_path, rows())
    change(data, tmp_path)
    with pytest.raises(DataError) as e:
        build_task_data(validate_config(data))
    assert message.format(p=tmp_path) in str(e.value)


def test_a_corrupt_file_is_named_or_left_out_with_skip_corrupt(tmp_path):
    data = declared(tmp_path, rows(400))
    good = tmp_path / "d.tfrecord"
    gz = tmp_path / "part-1.tfrecord.gz"
    whole = gzip.compress(good.read_bytes())
    gz.write_bytes(whole[: len(whole) // 2])  # truncated: a copy that stopped half-way
    (tmp_path / "part-0.tfrecord.gz").write_bytes(gzip.compress(good.read_bytes()))
    data["data"]["sources"]["d"]["train"] = str(tmp_path / "part-*.tfrecord.gz")
    with pytest.raises(DataError) as e:
        build_task_data(validate_config(data))
    assert str(gz) in str(e.value) and "corrupt or truncated" in str(e.value) and "skip_corrupt: true" in str(e.value)
    data["data"]["sources"]["d"]["skip_corrupt"] = True
    source = build_task_data(validate_config(data)).sources["d"]
    assert source.skipped_files == [str(gz)] and source.sizes["train"] == 400


def test_convert_refuses_bad_arguments_before_writing(tmp_path):
    data = npz_dict(weighted_npz(tmp_path / "t.npz"))
    with pytest.raises(MoeTfError, match="--shards: expected at least 1, got 0"):
        convert(validate_config(data), str(tmp_path / "s"), 0)
    with pytest.raises(MoeTfError, match="does not exist"):
        convert(validate_config(data), str(tmp_path / "no" / "s"), 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npz"]


def test_file_shards_need_streamed_sources_enough_files_and_full_batches(tmp_path):
    data = npz_dict(weighted_npz(tmp_path / "t.npz"))
    with pytest.raises(MoeTfError, match="source 'tab' is held in memory, not streamed"):
        build_components(validate_config({**data, "data": {**data["data"], "file_shards": 2}}))
    one = converted(tmp_path, data, shards=1)
    one["data"]["file_shards"] = 2
    with pytest.raises(DataError, match=r"1 training file\(s\) for 2 file shards .*moe-tf convert --shards 8"):
        build_components(validate_config(one))
    three = converted(tmp_path, data, shards=3, name="three")
    three["data"]["file_shards"] = 2
    three["training"]["batch_size"] = 128  # 168 training examples in 3 files: a shard may get one file of 56
    with pytest.raises(DataError, match=r"a file shard can hold as few as 56 training examples"):
        build_components(validate_config(three))
    three["training"]["batch_size"] = 16
    parts = build_components(validate_config(three))
    for _, labels, weights in parts.data.train_dataset(16, 0, 12):  # two shards' halves, weights over the whole
        labelled = ~np.isnan(labels["score"].numpy())
        assert len(labelled) == 16
        np.testing.assert_allclose(weights["score"].numpy(), labelled / labelled.sum(), rtol=1e-6)
        kind = weights["kind"].numpy()
        assert kind.sum() == pytest.approx(1.0) and (kind[labels["kind"].numpy() < 0] == 0).all()


def test_max_rows_caps_the_statistics_and_the_pass_says_so(tmp_path):
    data = converted(tmp_path, npz_dict(weighted_npz(tmp_path / "t.npz")), shards=3)
    lines = []
    whole = build_task_data(validate_config(data), echo=lines.append).sources["tab"]
    assert whole.statistics.rows == whole.sizes["train"] == 168 and whole.file_examples == [56, 56, 56]
    assert any("one pass over 9 file(s), 240 rows in" in line for line in lines), lines
    data["data"]["sources"]["tab"]["max_rows"] = 50
    lines.clear()
    capped = build_task_data(validate_config(data), echo=lines.append).sources["tab"]
    assert capped.sizes == whole.sizes and capped.statistics.rows == 56  # whole files, in order, up to max_rows
    assert any("training statistics from the first 56 training rows (max_rows 50)" in line for line in lines)
    first = whole.statistics.empty()
    first.add(next(iter(split_arrays_of_file(data, 0))))
    np.testing.assert_allclose(capped.statistics.moments["x"].total, first.moments["x"].total)


def split_arrays_of_file(data, k):
    """The inputs of training file k of a converted source, parsed."""
    import glob

    from moe_tf.data.tfrecord import TfrecordSource

    source = TfrecordSource(TfrecordSource.Config(**data["data"]["sources"]["tab"]), 0, "tab").load()
    path = sorted(glob.glob(data["data"]["sources"]["tab"]["train"]))[k]
    records = tf.data.TFRecordDataset([path], compression_type="GZIP").batch(10_000).map(source.parse)
    return [x for x, _ in records.as_numpy_iterator()]
