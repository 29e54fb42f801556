"""Shared fixtures. The session runs on two logical CPU devices so `mirrored` can be tested without GPUs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import moe_tf  # noqa: E402,F401  (first: it sets TensorFlow's environment, as the CLI runs)

# isort: split
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from moe_tf.config.loader import deep_merge, validate_config  # noqa: E402
from moe_tf.testing.configs import TINY, tiny_dict  # noqa: E402,F401  (re-exported to the tests)
from moe_tf.testing.files import write_census_csv, write_tabular_npz  # noqa: E402
from tests.text_data import write_reviews_tsv  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The two tests that run training in several fresh processes (minutes each) start first: pytest-xdist hands tests
# out in collection order, so collected last they would run alone at the end, one core idle. Each is the only test
# of its module, so no module fixture is shared with the tests moved past it.
START_FIRST = ("tests/training/test_multi_worker.py", "tests/training/test_signals.py")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in START_FIRST)  # stable: otherwise as collected


FASHION_DIR = "/usr/share/datasets/fashion-mnist"


def multi_dict(npz_path, **sections) -> dict:
    """Two sources of two modalities: digits images (task `digit`) and the tabular npz (tasks `kind`, `score`)."""
    base = tiny_dict(
        data={
            "sources": {
                "digits": {"type": "digits"},
                "tab": {"type": "npz", "path": str(npz_path), "features": ["x"], "labels": ["kind", "score"]},
            }
        },
        model={"stems": {"numeric": {"type": "dense", "units": [16]}}, "fusion_units": 16},
    )
    base["tasks"] = [
        {"name": "digit", "dataset": "digits"},
        {"name": "kind", "dataset": "tab", "label": "kind", "type": "binary"},
        {
            "name": "score",
            "dataset": "tab",
            "label": "score",
            "type": "regression",
            "weight": 0.5,
            "metrics": ["mae", "mse"],
        },
    ]
    return deep_merge(base, sections)


def text_dict(tsv_path, **sections) -> dict:
    """A tiny text MMoE on the generated reviews TSV: tasks `sentiment` (binary, string labels, some missing) and
    `topic` (3 classes)."""
    base = {
        "experiment": {"name": "text", "seed": 3},
        "data": {
            "sources": {
                "reviews": {"type": "tsv", "path": str(tsv_path), "text": ["text"], "labels": ["sentiment", "topic"]}
            },
            "shuffle_buffer": 1000,
        },
        "tasks": [
            {"name": "sentiment", "dataset": "reviews", "label": "sentiment", "type": "binary"},
            {"name": "topic", "dataset": "reviews", "label": "topic"},
        ],
        "model": {
            "architecture": "mmoe",
            "stems": {
                "text": {"type": "bag", "max_tokens": 100, "sequence_length": 12, "ngrams": 2, "embedding_dim": 16}
            },
            "experts": {"count": 2, "units": [16]},
            "tower": {"units": [8]},
        },
        "training": {"epochs": 4, "batch_size": 32, "log_every": 5, "optimizer": {"learning_rate": 0.02}},
        "logging": {"progress": "none"},
    }
    return deep_merge(base, sections)


def census_dict(csv_path, **sections) -> dict:
    """A tiny MMoE on the census-style CSV (moe_tf.testing.files.write_census_csv): categorical `city` (missing `?`)
    and `plan`, integer ids `user` hashed, numeric age/spend/member; tasks `bought` (binary) and `segment` (3)."""
    base = {
        "experiment": {"name": "census", "seed": 5},
        "data": {
            "sources": {
                "census": {
                    "type": "csv",
                    "path": str(csv_path),
                    "categorical": {"city": "city", "plan": {"embedding_dim": 4}, "user": {"hash_buckets": 16}},
                    "numeric": ["age", "spend", "member"],
                    "log1p": ["spend"],
                    "missing": ["?"],
                    "labels": ["bought", "segment"],
                }
            },
            "shuffle_buffer": 1000,
        },
        "tasks": [
            {
                "name": "bought",
                "dataset": "census",
                "label": "bought",
                "type": "binary",
                "metrics": ["auc", "accuracy"],
            },
            {"name": "segment", "dataset": "census", "label": "segment", "metrics": ["accuracy", "macro_f1"]},
        ],
        "model": {
            "architecture": "mmoe",
            "stems": {"categorical": {"type": "tabular", "units": [16]}},
            "experts": {"count": 2, "units": [16]},
            "tower": {"units": [8]},
        },
        "training": {"epochs": 3, "batch_size": 32, "optimizer": {"learning_rate": 0.01}},
        "logging": {"progress": "none"},
    }
    return deep_merge(base, sections)


def tiny_config(**sections):
    return validate_config(tiny_dict(**sections))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny digits MMoE trained for 2 epochs in this process: (run_dir, metrics)."""
    from moe_tf.run import train

    run_dir = str(tmp_path_factory.mktemp("runs") / "tiny")
    config = tiny_config(
        training={"early_stopping": {"monitor": "eval/digit/accuracy", "patience": 3}},
        logging={"gradient_stats_every": 10},
    )
    metrics = train(config, run_dir)
    return run_dir, metrics


@pytest.fixture
def tfds_online(monkeypatch):
    """TFDS's storage counts as reachable (the tests that load mocked TFDS data run on machines without a network)."""
    import moe_tf.data.tfds

    monkeypatch.setattr(moe_tf.data.tfds, "unreachable_reason", lambda *args, **kwargs: None)


@pytest.fixture(scope="session")
def mirrored():
    """One MirroredStrategy on the two logical CPUs for the whole session: strategies created one after another in a
    process restart their collective instance keys, and TensorFlow's collective executor refuses a key it has seen
    with another shape."""
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])


@pytest.fixture(scope="session")
def tabular_npz(tmp_path_factory):
    return write_tabular_npz(tmp_path_factory.mktemp("data") / "tab.npz")


@pytest.fixture(scope="session")
def multi_run(tmp_path_factory, tabular_npz):
    """Digits images and the tabular npz in one model, trained 80 steps in this process: (run_dir, metrics)."""
    from moe_tf.run import train

    run_dir = str(tmp_path_factory.mktemp("runs") / "multi")
    config = validate_config(multi_dict(tabular_npz, training={"steps": 80, "eval_every": 40}))
    return run_dir, train(config, run_dir)


@pytest.fixture(scope="session")
def reviews_tsv(tmp_path_factory):
    return write_reviews_tsv(tmp_path_factory.mktemp("data") / "reviews.tsv")


@pytest.fixture(scope="session")
def text_run(tmp_path_factory):
    """The tiny text MMoE trained on a copy of the reviews TSV in this process: (run_dir, metrics, tsv path)."""
    from moe_tf.run import train

    tsv = write_reviews_tsv(tmp_path_factory.mktemp("data") / "reviews.tsv")
    run_dir = str(tmp_path_factory.mktemp("runs") / "text")
    return run_dir, train(validate_config(text_dict(tsv)), run_dir), tsv


@pytest.fixture(scope="session")
def census_run(tmp_path_factory):
    """The tiny census MMoE trained in this process: (run_dir, metrics, csv path)."""
    from moe_tf.run import train

    csv_path = write_census_csv(tmp_path_factory.mktemp("data") / "census.csv")
    run_dir = str(tmp_path_factory.mktemp("runs") / "census")
    return run_dir, train(validate_config(census_dict(csv_path)), run_dir), csv_path


def run_main(capsys, *args):
    """`moe-tf ARGS` in this process through `cli.main`: (exit code, stdout, stderr). An uncaught exception (what
    a user would see as a traceback) fails the test."""
    from moe_tf import cli

    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_cli(*args, env=None, timeout=300, cwd=REPO):
    """Runs `python -m moe_tf ARGS` in a fresh process; returns the CompletedProcess."""
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "moe_tf", *args], capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd
    )


def run_fresh_python(script: str, *args, cwd) -> dict:
    """`python -c script ARGS` in a fresh process that cannot import moe_tf (run from `cwd`, PYTHONPATH empty: what a
    serving machine has); returns the JSON its last stdout line prints. A failed process fails the test."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ""}
    proc = subprocess.run(
        [sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True, timeout=120, env=env, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def straight_and_resumed(capsys, config, tmp_path, steps: int) -> tuple[dict, dict]:
    """`config` trained `steps` steps straight, and trained half of them then resumed to `steps`: the checkpoint
    variables of both runs ({name: array}), which an exact resume makes equal."""
    from moe_tf.run import train
    from moe_tf.run_dir import read_run_config
    from tests.training.test_trainer import _weights

    out = {}
    for name, n in (("straight", steps), ("resumed", steps // 2)):
        code, _, err = run_main(
            capsys, "train", "--config", config, "--output-dir", tmp_path / name, "--no-export",
            "--set", f"training.steps={n}",
        )  # fmt: skip
        assert code == 0, err[-3000:]
        out[name] = str(tmp_path / name)
    resumed = read_run_config(out["resumed"])
    resumed.training.steps = steps
    train(resumed, out["resumed"], resume=True, export=False)
    return _weights(out["straight"]), _weights(out["resumed"])
