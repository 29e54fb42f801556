"""Two sources of two modalities (digits images, a tabular npz with classification and regression tasks) train in one
model, export, and serve each task from its own features by name, in a fresh process without moe_tf."""

import json

import numpy as np
import pytest

from moe_tf.components import restore_components
from tests.conftest import run_fresh_python, run_main

FRESH = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert "moe_tf" not in sys.modules
m = tf.saved_model.load(sys.argv[1])
d = np.load(sys.argv[2])
out = {}
for name, sig in m.signatures.items():
    args = sig.structured_input_signature[1]
    out[name] = {"inputs": sorted(args)}
    if args:
        out[name]["outputs"] = {k: v.numpy().tolist() for k, v in sig(**{a: tf.constant(d[a]) for a in args}).items()}
print(json.dumps(out))
"""


def test_the_run_learns_every_task(multi_run):
    _, metrics = multi_run
    assert set(metrics["tasks"]) == {"digit", "kind", "score"}
    assert set(metrics["tasks"]["score"]) == {"loss", "mae", "mse"}
    # A linear rule of two features, from a quarter of the 80 batches: chance is about 0.5 (loss ln 2).
    assert metrics["tasks"]["kind"]["accuracy"] > 0.6 and metrics["tasks"]["kind"]["loss"] < np.log(2)
    assert metrics["tasks"]["digit"]["accuracy"] > 0.2


def test_numeric_statistics_come_from_the_training_split_and_are_saved(multi_run, tabular_npz):
    """The saved normalisation is numpy's mean and (population) variance of the file's rows that are in neither the
    eval nor the test split."""
    run_dir, _ = multi_run
    parts, _ = restore_components(run_dir)
    held_out = set()
    for split in ("eval", "test"):
        for x, _, _ in parts.data.eval_dataset(split, 64):
            if "x" in x and int(x["_source"][0]) == 1:  # the tabular source's batches
                held_out |= {row.tobytes() for row in x["x"].numpy()}
    rows = np.load(tabular_npz)["x"]
    train_rows = np.array([r for r in rows if r.tobytes() not in held_out], np.float64)
    assert len(held_out) == 180 and len(train_rows) == 420  # 600 rows: 10% eval, 20% test
    preprocess = parts.model.encoders["x"].preprocess
    np.testing.assert_allclose(preprocess.mean.numpy(), train_rows.mean(0), rtol=1e-5)
    np.testing.assert_allclose(preprocess.variance.numpy(), train_rows.var(0), rtol=1e-5)
    assert np.abs(train_rows.mean(0) - rows.mean(0)).max() > 1e-3  # all rows would give other statistics


def test_fresh_process_serves_each_task_by_feature_name(multi_run, tmp_path):
    run_dir, _ = multi_run
    parts, _ = restore_components(run_dir)
    batches = {int(x["_source"][0]): x for x, _, _ in parts.data.eval_dataset("test", 8)}
    image, features = batches[0]["image"].numpy(), batches[1]["x"].numpy()
    np.savez(tmp_path / "in.npz", image=image, x=features)
    expected_digit = parts.model({"image": image}, training=False)["outputs"]["digit"].numpy()
    expected_tab = parts.model({"x": features}, training=False)["outputs"]
    got = run_fresh_python(FRESH, f"{run_dir}/export", str(tmp_path / "in.npz"), cwd=tmp_path)
    assert got["serving_default"]["inputs"] == ["image", "x"]
    assert got["task_digit"]["inputs"] == ["image"]
    assert got["task_kind"]["inputs"] == got["task_score"]["inputs"] == ["x"]
    softmax = np.exp(expected_digit) / np.exp(expected_digit).sum(-1, keepdims=True)
    np.testing.assert_allclose(got["task_digit"]["outputs"]["probabilities"], softmax, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        got["task_score"]["outputs"]["value"], expected_tab["score"].numpy(), rtol=1e-4, atol=1e-5
    )
    p_kind = 1 / (1 + np.exp(-expected_tab["kind"].numpy()[:, 0]))
    np.testing.assert_allclose(np.array(got["task_kind"]["outputs"]["probabilities"])[:, 1], p_kind, rtol=1e-4)
    # serving_default computes each task from its own source's features, as in training
    np.testing.assert_allclose(got["serving_default"]["outputs"]["digit"], softmax, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        got["serving_default"]["outputs"]["score"], expected_tab["score"].numpy(), rtol=1e-4, atol=1e-5
    )


def test_predict_takes_the_features_it_is_given(multi_run, tmp_path, capsys):
    run_dir, _ = multi_run
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (5, 6)).astype(np.float32)
    np.savez(tmp_path / "tab.npz", x=x)
    code, out, err = run_main(capsys, "predict", run_dir, "--input", tmp_path / "tab.npz")
    assert code == 0, err[-2000:]
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == 5 and all(set(r) == {"kind", "score"} for r in rows)  # no image given: no digit
    parts, _ = restore_components(run_dir)
    expected = {k: v.numpy().astype(np.float64) for k, v in parts.model({"x": x}, training=False)["outputs"].items()}
    np.testing.assert_allclose([r["score"]["value"] for r in rows], expected["score"][:, 0], rtol=1e-4, atol=1e-5)
    p_kind = 1 / (1 + np.exp(-expected["kind"][:, 0]))
    np.testing.assert_allclose([r["kind"]["probabilities"][1] for r in rows], p_kind, atol=2e-6)
    assert [r["kind"]["class"] for r in rows] == ["1" if p > 0.5 else "0" for p in p_kind]
    np.save(tmp_path / "x.npy", rng.normal(size=(5, 6)))
    code, _, err = run_main(capsys, "predict", run_dir, "--input", tmp_path / "x.npy")
    assert code == 1 and "the model has 2 inputs (image, x); give a .npz" in err
    np.savez(tmp_path / "bad.npz", x=np.full((2, 6), np.nan))
    code, _, err = run_main(capsys, "predict", run_dir, "--input", tmp_path / "bad.npz")
    assert code == 1 and "feature 'x' has NaN or infinite values" in err


@pytest.mark.slow
def test_evaluate_a_multi_source_run_reproduces_its_test_metrics(multi_run, capsys):
    run_dir, metrics = multi_run
    code, out, err = run_main(capsys, "evaluate", run_dir, "--json")
    assert code == 0, err[-2000:]
    evaluated = json.loads(out)
    for task, values in metrics["tasks"].items():
        for name, value in values.items():
            assert evaluated["tasks"][task][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (task, name)
