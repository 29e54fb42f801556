"""Bad inputs a user can give the CLI, as tables shared by the test (tests/test_cli_errors.py) and the robustness
figures (benchmarks/robustness.py).

A case builds its files in a directory and returns the `moe-tf` arguments and the strings the one-line error must
contain. Data cases cover every source type: a missing file, wrong shapes, an empty split, labels out of range, NaN
features, unreadable text, a TFDS name that does not exist. CLI cases cover every command: a wrong run directory,
a missing or mismatched checkpoint, a directory that is a file, an unwritable output path, a corrupt export.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import yaml

from moe_tf.testing.configs import tiny_dict
from moe_tf.testing.files import write_idx

# ---- data ----------------------------------------------------------------------------------------------------


def _train_args(directory, data):
    path = os.path.join(directory, "config.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return ["train", "--config", path, "--output-dir", os.path.join(directory, "run")]


def _with_source(source, tasks, **model):
    data = tiny_dict(model=model, training={"batch_size": 4}) if model else tiny_dict(training={"batch_size": 4})
    data["data"]["sources"] = {"src": source}
    data["tasks"] = tasks
    return data


CLASS_TASK = [{"name": "t", "dataset": "src", "label": "y"}]
TEXT_MODEL = {"stems": {"text": {"type": "bag", "max_tokens": 50, "sequence_length": 8}}}
NUMERIC_MODEL = {"stems": {"numeric": {"type": "dense", "units": [8]}}}


def _npz(directory, **arrays):
    path = os.path.join(directory, "d.npz")
    np.savez(path, **arrays)
    return path


def _npz_case(arrays, expect, **source):
    def make(directory):
        path = _npz(directory, **arrays) if arrays is not None else os.path.join(directory, "missing.npz")
        src = {"type": "npz", "path": path, "features": ["x"], "labels": ["y"], **source}
        named = [] if "eval_fraction" in source else [os.path.basename(path)]  # a config error names the key
        return _train_args(directory, _with_source(src, CLASS_TASK, **NUMERIC_MODEL)), [*named, *expect]

    return make


def _text(directory, name, content: bytes | str):
    path = os.path.join(directory, name)
    with open(path, "wb") as f:
        f.write(content.encode() if isinstance(content, str) else content)
    return path


def _delimited_case(kind, content, expect, **source):
    def make(directory):
        name = f"d.{kind}"
        sep = "," if kind == "csv" else "\t"
        path = (
            _text(
                directory,
                name,
                content.replace("\t", sep) if isinstance(content, str) else content.replace(b"\t", sep.encode()),
            )
            if content is not None
            else os.path.join(directory, f"missing.{kind}")
        )
        src = {
            "type": kind,
            "path": path,
            "text": ["text"],
            "labels": ["y"],
            "eval_fraction": 0.0,
            "test_fraction": 0.25,
            **source,
        }
        return _train_args(directory, _with_source(src, CLASS_TASK, **TEXT_MODEL)), [os.path.basename(path), *expect]

    return make


GOOD_ROWS = "".join(f"word{i} day\t{i % 2}\n" for i in range(12))


def _idx_case(breakage, expect):
    def make(directory):
        rng = np.random.default_rng(0)
        for prefix, n in (("train", 40), ("t10k", 10)):
            labels = (np.arange(n) % 3).astype(np.uint8)
            if breakage == "labels count" and prefix == "train":
                labels = labels[:-5]
            if breakage == "label range" and prefix == "train":
                labels[3] = 7
            write_idx(os.path.join(directory, f"{prefix}-images-idx3-ubyte"), rng.integers(0, 255, (n, 6, 6), np.uint8))
            write_idx(os.path.join(directory, f"{prefix}-labels-idx1-ubyte"), labels)
        if breakage == "truncated":
            with open(os.path.join(directory, "train-images-idx3-ubyte"), "r+b") as f:
                f.truncate(200)
        path = os.path.join(directory, "nowhere") if breakage == "missing" else directory
        src = {
            "type": "idx",
            "path": path,
            "eval_fraction": 0.2,
            **({"class_names": ["a", "b", "c"]} if breakage == "label range" else {}),
        }
        return _train_args(directory, _with_source(src, [{"name": "t", "dataset": "src"}])), expect

    return make


def _tfds_case(name, expect, **source):
    def make(directory):
        src = {"type": "tfds", "name": name, "data_dir": os.path.join(directory, "tfds"), "download": False, **source}
        return _train_args(directory, _with_source(src, [{"name": "t", "dataset": "src"}])), expect

    return make


def _multi_image_missing(directory):
    src = {"type": "multi_image", "source": {"type": "idx", "path": os.path.join(directory, "no_images")}}
    tasks = [{"name": "left", "dataset": "src", "label": "left"}, {"name": "right", "dataset": "src", "label": "right"}]
    return _train_args(directory, _with_source(src, tasks)), ["no_images"]


def _digits_label_map(directory):
    data = tiny_dict()
    data["tasks"][1]["label_map"] = {3: 1, 12: 1}  # digits has classes 0-9
    return _train_args(directory, data), ["tasks[1].label_map", "source label 12 is out of range"]


def _synthetic_empty_split(directory):
    src = {"type": "synthetic_mmoe", "size": 10, "dim": 4, "eval_fraction": 0.0, "test_fraction": 0.05}
    tasks = [
        {"name": "a", "dataset": "src", "label": "y1", "type": "regression"},
        {"name": "b", "dataset": "src", "label": "y2", "type": "regression"},
    ]
    return _train_args(directory, _with_source(src, tasks, **NUMERIC_MODEL)), ["no 'test' split", "'src': 0"]


DATA_CASES = {
    "npz: missing file": _npz_case(None, ["not found"]),
    "npz: wrong shapes": _npz_case({"x": np.zeros((6, 2)), "y": np.zeros(5, int)}, ["different lengths"]),
    "npz: empty split": _npz_case(
        {"x": np.zeros((4, 2)), "y": np.zeros(4, int)},
        ["data.sources.src", "must leave examples for training"],
        eval_fraction=0.5,
        test_fraction=0.5,
    ),
    "npz: label out of range": _npz_case(
        {"x": np.zeros((8, 2)), "y": np.array([0, 1, -2, 1, 0, 1, 0, 1])}, ["label 'y' has value -2"]
    ),
    "npz: NaN features": _npz_case({"x": np.array([[0.0, np.nan]] * 8), "y": np.zeros(8, int)}, ["NaN"]),
    "npz: unreadable": lambda d: (
        _train_args(
            d,
            _with_source(
                {"type": "npz", "path": _text(d, "d.npz", "not a zip"), "features": ["x"], "labels": ["y"]},
                CLASS_TASK,
                **NUMERIC_MODEL,
            ),
        ),
        ["d.npz", "cannot read"],
    ),
    "csv: missing file": _delimited_case("csv", None, ["not found"]),
    "csv: ragged row": _delimited_case("csv", "text\ty\n" + GOOD_ROWS + "a\tb\tc\n", ["line 14", "3 cells"]),
    "csv: empty file": _delimited_case("csv", "", ["empty file"]),
    "csv: label out of range": _delimited_case(
        "csv", "text\ty\n" + GOOD_ROWS + "x\tseven\n", ["line 14", "'seven'"], classes={"y": ["0", "1"]}
    ),
    "csv: infinite feature": _delimited_case(
        "csv",
        "text\ty\tz\n" + GOOD_ROWS.replace("\n", "\t1.0\n") + "x\t1\tinf\n",
        ["line 14", "feature 'z' is inf; features cannot be infinite"],
        numeric=["z"],
    ),
    "csv: not a number": _delimited_case(
        "csv",
        "text\ty\tz\n" + GOOD_ROWS.replace("\n", "\t1.0\n") + "x\t1\tmany\n",
        ["line 14", "feature 'z' is 'many', not a number"],
        numeric=["z"],
    ),
    "csv: unknown categorical column": _delimited_case(
        "csv", "text\ty\n" + GOOD_ROWS, ["no column 'colour'"], categorical=["colour"]
    ),
    "tsv: missing file": _delimited_case("tsv", None, ["not found"]),
    "tsv: unreadable text": _delimited_case(
        "tsv", ("text\ty\n" + GOOD_ROWS).encode() + b"caf\xe9\t1\n", ["line 14", "not UTF-8"]
    ),
    "tsv: wrong column": _delimited_case("tsv", "words\ty\n" + GOOD_ROWS, ["no column 'text'"]),
    # (-1 is the missing-label marker)
    "tsv: negative label": _delimited_case("tsv", "text\ty\n" + GOOD_ROWS + "x\t-3\n", ["line 14", "-3"]),
    "idx: missing directory": _idx_case("missing", ["nowhere", "not found"]),
    "idx: truncated file": _idx_case("truncated", ["train-images-idx3-ubyte", "truncated"]),
    "idx: wrong shapes": _idx_case("labels count", ["train has 40 images but 35 labels"]),
    "idx: label out of range": _idx_case("label range", ["class_names has 3 names but the labels have 8 classes"]),
    "tfds: unknown name": _tfds_case("no_such_dataset_xyz", ["no_such_dataset_xyz"]),
    "tfds: not downloaded": _tfds_case("mnist", ["mnist", "Offline"]),
    "multi_image: missing base": _multi_image_missing,
    "digits: label map": _digits_label_map,
    "synthetic_mmoe: empty split": _synthetic_empty_split,
}

# ---- commands ------------------------------------------------------------------------------------------------


def copy_run(trained, directory):
    """A copy of a trained run (tests/conftest.trained_run) to break."""
    run = os.path.join(directory, "run")
    shutil.copytree(trained, run)
    return run


def _truncate_checkpoints(run):
    root = os.path.join(run, "checkpoints")
    for base, _, files in os.walk(root):
        for name in files:
            if ".data-" in name:
                with open(os.path.join(base, name), "r+b") as f:
                    f.truncate(32)


def _drop_checkpoints(run):
    shutil.rmtree(os.path.join(run, "checkpoints"))


def _other_model(run):
    path = os.path.join(run, "config.yaml")
    data = yaml.safe_load(open(path))
    data["model"]["experts"]["units"] = [24]
    with open(path, "w") as f:
        yaml.safe_dump(data, f)


def _corrupt_export(run):
    with open(os.path.join(run, "export", "saved_model.pb"), "r+b") as f:
        f.truncate(100)


def _images(directory):
    path = os.path.join(directory, "images.npy")
    np.save(path, np.zeros((3, 8, 8), np.uint8))
    return path


def _a_file(directory):
    path = os.path.join(directory, "a_file")
    with open(path, "w") as f:
        f.write("x")
    return path


# (break the run copy or None, argv builder (directory, run) → args, expected strings, needs a trained run)
CLI_CASES = {
    "evaluate: missing run directory": (None, lambda d, r: ["evaluate", os.path.join(d, "nope")], ["nope"]),
    "evaluate: not a run directory": (None, lambda d, r: ["evaluate", d], ["not a run directory"]),
    "evaluate: a file": (None, lambda d, r: ["evaluate", _a_file(d)], ["a_file"]),
    "evaluate: no checkpoint": (_drop_checkpoints, lambda d, r: ["evaluate", r], ["no checkpoint"]),
    "evaluate: mismatched checkpoint": (_other_model, lambda d, r: ["evaluate", r], ["does not match the model"]),
    "evaluate: corrupt checkpoint": (_truncate_checkpoints, lambda d, r: ["evaluate", r], ["cannot be read"]),
    "export: no checkpoint": (_drop_checkpoints, lambda d, r: ["export", r], ["no checkpoint"]),
    "export: unwritable output": (
        None,
        lambda d, r: ["export", r, "--output", os.path.join(_a_file(d), "x")],
        ["a_file"],
    ),
    "export: output is a file": (None, lambda d, r: ["export", r, "--output", _a_file(d)], ["a_file"]),
    "gates: missing run directory": (None, lambda d, r: ["gates", os.path.join(d, "nope")], ["nope"]),
    "gates: mismatched checkpoint": (_other_model, lambda d, r: ["gates", r], ["does not match the model"]),
    "predict: missing export": (
        None,
        lambda d, r: ["predict", os.path.join(d, "nope"), "--input", _images(d)],
        ["nope"],
    ),
    "predict: corrupt export": (_corrupt_export, lambda d, r: ["predict", r, "--input", _images(d)], ["export"]),
    "predict: missing input": (None, lambda d, r: ["predict", r, "--input", os.path.join(d, "none.npy")], ["none.npy"]),
    "predict: wrong input shape": (None, lambda d, r: ["predict", r, "--input", _wrong_images(d)], ["images.npy"]),
    "predict: unwritable output": (
        None,
        lambda d, r: ["predict", r, "--input", _images(d), "--output", os.path.join(_a_file(d), "out.jsonl")],
        ["a_file"],
    ),
    "train: output directory is a file": (
        None,
        lambda d, r: ["train", "--config", _config(d), "--output-dir", _a_file(d)],
        ["is a file"],
    ),
    "train: unwritable output directory": (
        None,
        lambda d, r: ["train", "--config", _config(d), "--output-dir", os.path.join(_a_file(d), "run")],
        ["a_file"],
    ),
    "train: resume with another model": (
        None,
        lambda d, r: ["train", "--config", _config(d, wider=True), "--output-dir", r, "--resume"],
        ["differ"],
    ),
    "train: missing --init-from": (
        None,
        lambda d, r: [
            "train",
            "--config",
            _config(d),
            "--output-dir",
            os.path.join(d, "new"),
            "--init-from",
            os.path.join(d, "nope"),
        ],
        ["nope"],
    ),
    "validate: missing config": (None, lambda d, r: ["validate", os.path.join(d, "none.yaml")], ["none.yaml"]),
}


def _wrong_images(directory):
    path = os.path.join(directory, "images.npy")
    np.save(path, np.zeros((3, 5, 7), np.uint8))
    return path


def _config(directory, wider=False):
    data = tiny_dict(model={"experts": {"units": [24]}}) if wider else tiny_dict()
    path = os.path.join(directory, "c.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path
