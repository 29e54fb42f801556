"""The export loads in a fresh process without moe_tf and matches the trained model."""

import json
import os
import shutil
import subprocess
import sys

import numpy as np

from moe_tf.components import restore_components
from moe_tf.data import build_task_data
from moe_tf.run_dir import read_run_config
from tests.conftest import REPO, run_fresh_python, run_main

FRESH = r"""
import json, sys
import numpy as np
import tensorflow as tf
assert "moe_tf" not in sys.modules
m = tf.saved_model.load(sys.argv[1])
x = np.load(sys.argv[2])
out = {k: v.numpy().tolist() for k, v in m.signatures["serving_default"](image=tf.constant(x)).items()}
task = {k: v.numpy().tolist() for k, v in m.signatures["task_digit"](image=tf.constant(x)).items()}
meta = {k: [s.decode() for s in v.numpy()] for k, v in m.signatures["metadata"]().items()}
gates = {k: v.numpy().tolist() for k, v in m.signatures["gates"](image=tf.constant(x)).items()}
print(json.dumps({"out": out, "task": task, "meta": meta, "gates": gates, "signatures": sorted(m.signatures)}))
"""


def test_fresh_process_matches_trained_model(trained_run, tmp_path):
    run_dir, _ = trained_run
    parts, _ = restore_components(run_dir)
    inputs, _, _ = next(iter(parts.data.eval_dataset("test", 16)))
    np.save(tmp_path / "x.npy", inputs["image"].numpy())
    result = parts.model(inputs, training=False)
    logits = {k: v.numpy() for k, v in result["outputs"].items()}
    got = run_fresh_python(FRESH, f"{run_dir}/export", str(tmp_path / "x.npy"), cwd=tmp_path)
    assert got["signatures"] == ["gates", "metadata", "serving_default", "task_digit", "task_high"]
    for task in ("digit", "high"):  # the export's gate weights are the model's
        np.testing.assert_allclose(got["gates"][task], result["gates"][task]["weights"].numpy(), rtol=1e-4, atol=1e-6)
    expected_digit = np.exp(logits["digit"]) / np.exp(logits["digit"]).sum(-1, keepdims=True)
    np.testing.assert_allclose(got["out"]["digit"], expected_digit, rtol=1e-4, atol=1e-6)
    p_high = 1 / (1 + np.exp(-logits["high"][:, 0]))
    np.testing.assert_allclose(np.array(got["out"]["high"])[:, 1], p_high, rtol=1e-4, atol=1e-6)
    assert got["task"]["class_id"] == np.argmax(expected_digit, -1).tolist()
    assert got["meta"] == {"digit": [str(i) for i in range(10)], "high": ["0", "1"]}


def test_saved_model_cli_lists_signatures(trained_run):
    run_dir, _ = trained_run
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    proc = subprocess.run(
        [cli, "show", "--dir", f"{run_dir}/export", "--all"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for name in ("serving_default", "task_digit", "task_high", "metadata", "gates"):
        assert f"signature_def['{name}']" in proc.stdout


def test_predict_and_export_cli(trained_run, tmp_path, capsys):
    """`moe-tf predict` on 300 examples (two batches of the 256 it serves at a time): each row's probabilities and
    class are the in-process model's."""
    run_dir, _ = trained_run
    config = read_run_config(run_dir)
    inputs, labels, _ = next(iter(build_task_data(config).eval_dataset("test", 300)))
    assert len(labels["digit"]) == 300
    np.save(tmp_path / "x.npy", inputs["image"].numpy()[..., 0])  # [N, H, W]: the channel axis is added
    export_dir = str(tmp_path / "exp")
    code, _, err = run_main(capsys, "export", run_dir, "--output", export_dir)
    assert code == 0, err[-2000:]
    code, out, err = run_main(capsys, "predict", export_dir, "--input", tmp_path / "x.npy")
    assert code == 0, err[-2000:]
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert len(rows) == 300
    parts, _ = restore_components(run_dir)
    logits = {k: v.numpy().astype(np.float64) for k, v in parts.model(inputs, training=False)["outputs"].items()}
    digit = np.exp(logits["digit"]) / np.exp(logits["digit"]).sum(-1, keepdims=True)
    high = 1 / (1 + np.exp(-logits["high"][:, 0]))
    np.testing.assert_allclose([r["digit"]["probabilities"] for r in rows], digit, atol=2e-6)
    assert [int(r["digit"]["class"]) for r in rows] == np.argmax(digit, -1).tolist()
    np.testing.assert_allclose([r["digit"]["probability"] for r in rows], digit.max(-1), rtol=1e-4)
    assert [r["high"]["class"] for r in rows] == ["1" if p > 0.5 else "0" for p in high]
    np.testing.assert_allclose([r["high"]["probabilities"][1] for r in rows], high, atol=2e-6)
    hits = sum(int(r["digit"]["class"]) == int(y) for r, y in zip(rows, labels["digit"].numpy()))
    assert hits / 300 > 0.3
    np.save(tmp_path / "bad.npy", np.zeros((2, 5, 5), np.uint8))
    code, _, err = run_main(capsys, "predict", export_dir, "--input", tmp_path / "bad.npy")
    assert code == 1 and "do not match the model input (8, 8, 1)" in err
    np.savez(tmp_path / "named.npz", image=inputs["image"].numpy())  # by feature name
    code, _, err = run_main(
        capsys, "predict", export_dir, "--input", tmp_path / "named.npz", "--output", tmp_path / "preds.jsonl"
    )
    assert code == 0, err[-2000:]
    named = [json.loads(line) for line in (tmp_path / "preds.jsonl").read_text().splitlines()]
    assert [r["digit"]["class"] for r in named] == [r["digit"]["class"] for r in rows]


def test_cli_errors_without_tracebacks(trained_run, tmp_path, capsys):
    run_dir, _ = trained_run
    np.save(tmp_path / "x.npy", np.zeros((2, 8, 8), np.uint8))
    code, _, err = run_main(
        capsys,
        "predict",
        f"{run_dir}/export",
        "--input",
        tmp_path / "x.npy",
        "--output",
        tmp_path / "missing" / "preds.jsonl",
    )
    assert code == 1 and f"the directory {tmp_path}/missing does not exist" in err
    export_copy = tmp_path / "export"
    shutil.copytree(f"{run_dir}/export", export_copy)
    (export_copy / "moe_tf_export.json").write_text("{not json")
    code, _, err = run_main(capsys, "predict", export_copy, "--input", tmp_path / "x.npy")
    assert code == 1 and "moe_tf_export.json is corrupt" in err
    code, _, err = run_main(capsys, "predict", f"{run_dir}/export", "--input", f"{REPO}/configs/digits_mmoe.yaml")
    assert code == 1 and "input type '.yaml' is not supported; give one of: .npz" in err and ".jsonl" in err
    (tmp_path / "a_file").write_text("")
    code, _, err = run_main(
        capsys, "train", "--config", f"{REPO}/configs/digits_mmoe.yaml", "--output-dir", tmp_path / "a_file"
    )
    assert code == 1 and "is a file, not a directory" in err
