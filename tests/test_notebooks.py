"""The notebooks run top to bottom against the library (tiny budgets through environment variables)."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    """The gate-interpretability notebook: the gate heatmap and each task's and true class's expert use."""
    env = {"QUICKSTART_EPOCHS": "3", "QUICKSTART_RUN_DIR": str(tmp_path / "quickstart")}
    outputs = execute("quickstart.ipynb", env, monkeypatch)
    assert (tmp_path / "quickstart" / "gates.png").stat().st_size > 1000
    assert (tmp_path / "quickstart" / "metrics.json").exists()
    assert "'digit': [" in outputs  # the gate weights were printed


def execute(name, env, monkeypatch):
    for key, value in {**env, "TF_CPP_MIN_LOG_LEVEL": "2"}.items():
        monkeypatch.setenv(key, value)
    nb = nbformat.read(os.path.join(REPO, "notebooks", name), as_version=4)
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": os.path.join(REPO, "notebooks")}}
    ).execute()
    return "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)


@pytest.mark.slow
def test_compare_notebook_executes(tmp_path, monkeypatch):
    env = {"COMPARE_BUDGET": "training.steps=20", "COMPARE_ROOT": str(tmp_path / "runs")}
    outputs = execute("compare_runs.ipynb", env, monkeypatch)
    assert "2 run(s), sorted by eval/digit/accuracy" in outputs
    assert "model.architecture.type" in outputs and "shared_bottom" in outputs


@pytest.mark.slow
def test_search_and_compress_notebook_executes(tmp_path, monkeypatch):
    outputs = execute(
        "search_and_compress.ipynb",
        {"SEARCH_TRIALS": "2", "SEARCH_STEPS": "20", "SEARCH_ROOT": str(tmp_path / "runs")},
        monkeypatch,
    )
    assert "TFLite (int8)" in outputs and "float32 TFLite" in outputs
    assert (tmp_path / "runs" / "student" / "distillation.json").exists()
    assert (tmp_path / "runs" / "study" / "best.yaml").exists()


@pytest.mark.slow
def test_keras_layers_notebook_executes(tmp_path, monkeypatch):
    """An MMoE block in a plain Keras model (fit, gate weights, .keras round trip), then the same architecture
    through moe-tf's loop with PCGrad and an exact resume."""
    env = {"LAYERS_EPOCHS": "8", "LAYERS_STEPS": "200", "LAYERS_DIR": str(tmp_path)}
    outputs = execute("keras_layers.ipynb", env, monkeypatch)
    accuracy = eval(outputs.splitlines()[0])  # the fit model's test accuracy per task
    assert accuracy["sum"] > 0.9 and accuracy["product"] > 0.85, accuracy
    assert "reloaded outputs identical: True" in outputs
    assert "resumed == straight: True" in outputs
    assert (tmp_path / "straight" / "export" / "saved_model.pb").exists()
