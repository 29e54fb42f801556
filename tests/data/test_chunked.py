"""Streamed csv/tsv (`stream: true`) and Parquet sources: the examples, labels, statistics and batches of the
in-memory csv source, split by file or by a hashed key, with its errors (file and line), and an exact resume that
reads the stored pass instead of passing over the files again."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
import yaml

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.data.pipeline import build_task_data
from moe_tf.errors import DataError, MoeTfError
from moe_tf.testing.files import write_census_csv
from tests.conftest import census_dict, straight_and_resumed
from tests.data.test_tfrecord import assert_same_arrays, split_arrays_of


def split_files(tmp_path, n=400, shards=1, kind="csv"):
    """The census CSV cut into train (3/4, in `shards` files), eval and test files: {role: [paths]}."""
    lines = open(write_census_csv(tmp_path / "all.csv", n=n)).read().splitlines()
    head, body = lines[0], lines[1:]
    cut = {"train": body[: n * 3 // 4], "eval": body[n * 3 // 4 : n * 7 // 8], "test": body[n * 7 // 8 :]}
    out = {}
    for role, rows in cut.items():
        parts = np.array_split(np.arange(len(rows)), shards if role == "train" else 1)
        out[role] = []
        for k, part in enumerate(parts):
            path = tmp_path / f"{role}-{k}.csv"
            path.write_text("\n".join([head] + [rows[i] for i in part]) + "\n")
            if kind == "parquet":
                path = path.with_suffix(".parquet")
                pq.write_table(pacsv.read_csv(str(path.with_suffix(".csv"))), str(path))
            out[role].append(str(path))
    return out


def files_dict(files, **source):
    data = census_dict("unused")
    src = data["data"]["sources"]["census"]
    del src["path"]
    src.update({role: paths if len(paths) > 1 else paths[0] for role, paths in files.items()}, **source)
    return data


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_streamed_files_give_the_in_memory_examples_statistics_and_batches(tmp_path, kind):
    """One training file and a shuffle buffer as large as the split: the streamed epochs are the in-memory ones,
    batch for batch; every split's examples, the specs, labels and statistics are the in-memory csv source's."""
    files = split_files(tmp_path, kind=kind)
    memory = build_components(validate_config(files_dict(split_files(tmp_path))), training=False)
    extra = {"type": "parquet"} if kind == "parquet" else {"stream": True}
    stream = build_components(validate_config(files_dict(files, **extra)), training=False)
    a, b = memory.data.sources["census"], stream.data.sources["census"]
    assert b.arrays == {} and a.features == b.features and a.labels == b.labels and a.sizes == b.sizes
    for role in ("train", "eval", "test"):
        x, y = split_arrays_of(b, role)
        assert_same_arrays(a.arrays[role][0], x)
        assert_same_arrays(a.arrays[role][1], y)
    per_epoch = memory.data.steps_per_epoch(32)
    batches = [list(d.data.train_dataset(32, 0, 2 * per_epoch + 1)) for d in (memory, stream)]
    assert len(batches[0]) == len(batches[1]) == 2 * per_epoch + 1
    for (xa, ya, _), (xb, yb, _) in zip(*batches):
        for k in xa:
            np.testing.assert_array_equal(xa[k].numpy(), xb[k].numpy(), err_msg=k)
        for k in ya:
            np.testing.assert_array_equal(ya[k].numpy(), yb[k].numpy(), err_msg=k)
    for m, s in zip(memory.data.feature_statistics("numeric"), stream.data.feature_statistics("numeric")):
        np.testing.assert_allclose(m, s, rtol=1e-6)
    assert memory.model.preprocessors("city")[0].vocabulary() == stream.model.preprocessors("city")[0].vocabulary()


def test_split_by_keeps_each_key_in_one_split_streamed_and_in_memory(tmp_path):
    files = split_files(tmp_path, shards=3)
    shards = files["train"] + files["eval"] + files["test"]
    memory = build_task_data(validate_config(census_dict(tmp_path / "all.csv", data={"sources": {"census": {
        "split_by": "user", "eval_fraction": 0.2, "test_fraction": 0.2}}})))  # fmt: skip
    data = files_dict({"path": shards}, stream=True, split_by="user", eval_fraction=0.2, test_fraction=0.2)
    stream = build_task_data(validate_config(data))
    a, b = memory.sources["census"], stream.sources["census"]
    assert a.sizes == b.sizes and sum(a.sizes.values()) == 400 and min(a.sizes.values()) > 20
    users = {}
    for role in ("train", "eval", "test"):
        x, y = split_arrays_of(b, role)
        rows = sorted(zip(x["user"].astype(str), x["numeric"][:, 1], y["bought"]))
        assert rows == sorted(zip(a.arrays[role][0]["user"].astype(str), a.arrays[role][0]["numeric"][:, 1],
                                  a.arrays[role][1]["bought"]))  # fmt: skip
        users[role] = set(x["user"].astype(str))
    assert not (users["train"] & users["eval"]) and not (users["train"] & users["test"])


def test_a_streamed_run_from_the_command_line_resumes_exactly_and_reads_the_stored_pass(tmp_path, capsys, monkeypatch):
    import moe_tf.data.chunked as chunked

    data = files_dict(split_files(tmp_path, shards=3), stream=True)
    data["training"] = {"steps": 12, "checkpoint_every": 6, "batch_size": 32}
    data["data"]["shuffle_buffer"] = 64
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(data))
    calls = []
    real = chunked._pass
    monkeypatch.setattr(chunked, "_pass", lambda *a: calls.append(1) or real(*a))
    a, b = straight_and_resumed(capsys, tmp_path / "s.yaml", tmp_path, 12)
    assert len(a) > 5 and a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert len(calls) == 2  # the two fresh runs; the resumed one read data_statistics.json
    record = json.loads((tmp_path / "resumed" / "data_statistics.json").read_text())["sources"]["census"]
    assert record["labels"]["segment"]["num_classes"] == 3 and record["splits"]["eval"]["examples"] == 50


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda t: {
                "train": write(
                    t / "bad.csv",
                    "city,plan,user,age,spend,member,bought,segment\n"
                    "lyon,pro,1,30,2.5,0,1,0\nlyon,pro,1,thirty,2.5,0,1,0\n",
                )
            },  # fmt: skip
            "bad.csv, line 3: feature 'age' is 'thirty', not a number",
        ),
        (
            lambda t: {
                "train": write(t / "bad.csv", "city,plan,user,spend,member,bought,segment\nlyon,pro,1,2,0,1,0\n")
            },
            "bad.csv: no column 'age' (data.sources.census); the columns are",
        ),
        (
            lambda t: {
                "eval": write(
                    t / "bad.csv",
                    "city,plan,user,age,spend,member,bought,segment\n"
                    "lyon,pro,1,30,2.5,0,1,0\nlyon,pro,1,30,2.5,0,1,-3\n",
                )
            },  # fmt: skip
            "bad.csv, line 3: label 'segment' is -3; class ids are >= 0",
        ),
        (lambda t: {"train": str(t / "nothing-*.csv")}, "data.sources.census.train: "),
        (lambda t: {"eval": None, "eval_fraction": 0.1}, "cuts its eval split from the training files by `split_by`"),
    ],
)
def test_bad_streamed_files_are_named_with_the_line(tmp_path, change, message):
    files = split_files(tmp_path)
    data = files_dict(files, stream=True)
    data["data"]["sources"]["census"].update(change(tmp_path))
    if data["data"]["sources"]["census"]["eval"] is None:
        del data["data"]["sources"]["census"]["eval"]
    with pytest.raises((DataError, MoeTfError)) as e:
        build_task_data(validate_config(data))
    assert message in str(e.value)


def test_an_unknown_eval_class_name_is_refused_with_its_file_and_line(tmp_path):
    head = "city,plan,user,age,spend,member,bought,segment\n"
    train = write(
        tmp_path / "t.csv", head + "".join(f"lyon,pro,1,30,2.5,0,{k % 2},{'abc'[k % 3]}\n" for k in range(40))
    )
    evaluation = write(tmp_path / "e.csv", head + "lyon,pro,1,30,2.5,0,1,a\nlyon,pro,1,30,2.5,0,1,z\n")
    data = files_dict({"train": [train], "eval": [evaluation]}, stream=True, test_fraction=0.0)
    with pytest.raises(DataError, match=r"e\.csv, line 3: label 'segment' is 'z', which is not one of the classes"):
        build_task_data(validate_config(data))


def test_a_corrupt_parquet_file_is_named_or_left_out_with_skip_corrupt(tmp_path):
    files = split_files(tmp_path, shards=2, kind="parquet")
    broken = tmp_path / "train-9.parquet"
    broken.write_bytes(open(files["train"][0], "rb").read()[:200])
    files["train"].append(str(broken))
    with pytest.raises(DataError, match=r"train-9\.parquet: unreadable .*skip_corrupt: true"):
        build_task_data(validate_config(files_dict(files, type="parquet")))
    data = build_task_data(validate_config(files_dict(files, type="parquet", skip_corrupt=True)))
    assert data.sources["census"].skipped_files == [str(broken)] and data.sources["census"].sizes["train"] == 300
    with pytest.raises(Exception, match="a setting of text files"):
        validate_config(files_dict(files, type="parquet", header=False))


@pytest.mark.slow
def test_a_killed_streamed_parquet_run_resumes_at_the_exact_batch(tmp_path):
    """SIGKILL between checkpoints, then --resume: every checkpointed tensor equals an uninterrupted run's (the
    epoch's file order and shuffle are seeded, and the resumed pipeline skips to the step's batch)."""
    from moe_tf.testing.processes import finish, printed_steps, read_until, start
    from tests.training.test_trainer import _weights

    data = files_dict(split_files(tmp_path, shards=3, kind="parquet"), type="parquet")
    data["training"] = {"steps": 24, "checkpoint_every": 8, "log_every": 1, "batch_size": 32, "deterministic": True}
    data["logging"] = {"progress": "lines", "tensorboard": False}
    data["data"]["shuffle_buffer"] = 64
    config = str(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    straight = start(config, str(tmp_path / "straight"))
    rest = finish(straight)
    assert straight.returncode == 0, rest[-3000:]
    run_dir = tmp_path / "run"
    proc = start(config, str(run_dir))
    lines = read_until(proc.stderr, r"\bstep 13  loss")
    proc.kill()
    lines += finish(proc).splitlines(keepends=True)
    last = max(int(f.split("-")[1].split(".")[0]) for f in os.listdir(run_dir / "checkpoints") if f.endswith(".index"))
    assert 8 <= last < max(printed_steps(lines))  # killed between checkpoints: steps are lost and replayed
    proc = start(config, str(run_dir), "--resume")
    rest = finish(proc)
    assert proc.returncode == 0 and f"resumed from step {last}" in rest, rest[-3000:]
    assert "statistics and counts are read from data_statistics.json" in rest
    a, b = _weights(str(tmp_path / "straight")), _weights(str(run_dir))
    assert a.keys() == b.keys() and len(a) > 5
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_stored_pass_keeps_files_left_out_and_refuses_other_settings(tmp_path):
    from moe_tf.data.streamed import StoredPass

    files = split_files(tmp_path, shards=2, kind="parquet")
    broken = tmp_path / "train-9.parquet"
    broken.write_bytes(open(files["train"][0], "rb").read()[:200])
    files["train"].append(str(broken))
    data = files_dict(files, type="parquet", skip_corrupt=True)
    first = build_task_data(validate_config(data)).sources["census"]
    stored = StoredPass({"census": json.loads(json.dumps(first.pass_record))}, "refuse")
    again = build_task_data(validate_config(data), stored).sources["census"]
    assert again.skipped_files == first.skipped_files == [str(broken)] and again.sizes == first.sizes
    assert again.file_examples == first.file_examples and 0 not in again.file_examples
    data["data"]["sources"]["census"]["classes"] = {"segment": ["0", "1", "2"]}
    with pytest.raises(DataError, match="the settings of data.sources.census changed since the run started"):
        build_task_data(validate_config(data), stored)


def test_parquet_float_labels_are_targets_and_a_truncated_gzip_csv_is_named(tmp_path):
    import gzip

    import pyarrow as pa

    rows = 64
    table = pa.table({"x": np.arange(rows, dtype=float), "y": np.arange(rows, dtype=float) % 3, "k": ["a"] * rows})
    pq.write_table(table, str(tmp_path / "t.parquet"))
    source = {"type": "parquet", "train": str(tmp_path / "t.parquet"), "numeric": ["x"], "categorical": ["k"]}
    source.update(labels=["y"], eval_fraction=0.0, test_fraction=0.0)
    data = {
        "data": {"sources": {"p": source}},
        "tasks": [{"name": "y", "dataset": "p", "label": "y", "type": "regression"}],
    }
    loaded = build_task_data(validate_config(data)).sources["p"]
    assert loaded.labels["y"].kind == "value"  # 0.0, 1.0, 2.0: numbers, not class ids
    text = open(split_files(tmp_path)["train"][0], "rb").read()
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(text)[:-40])
    data = files_dict({"train": [str(tmp_path / "cut.csv.gz")]}, stream=True, eval_fraction=0.0, test_fraction=0.0)
    with pytest.raises(DataError, match=r"cut\.csv\.gz: unreadable .*skip_corrupt: true"):
        build_task_data(validate_config(data))


def test_parquet_numbers_equal_to_a_missing_token_are_missing(tmp_path):
    import pyarrow as pa

    x = np.array([1.0, -999.0, 3.0, np.nan] * 8)
    pq.write_table(pa.table({"x": x, "y": [0, 1] * 16}), str(tmp_path / "t.parquet"))
    source = {"type": "parquet", "train": str(tmp_path / "t.parquet"), "numeric": ["x"], "labels": ["y"]}
    source.update(missing=["", "-999"], eval_fraction=0.0, test_fraction=0.0)
    data = {"data": {"sources": {"p": source}}, "tasks": [{"name": "y", "dataset": "p", "label": "y"}]}
    loaded = build_task_data(validate_config(data))
    assert loaded.sources["p"].features["numeric"].options["nullable"] == [True]
    mean, _, _ = loaded.feature_statistics("numeric")
    assert mean[0] == pytest.approx(2.0)  # -999 and the nulls left out
