"""The quickstart notebook runs top to bottom against the library."""

import os

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO


@pytest.mark.slow
def test_quickstart_notebook_executes(tmp_path, monkeypatch):
    monkeypatch.setenv("QUICKSTART_EPOCHS", "3")
    monkeypatch.setenv("QUICKSTART_RUN_DIR", str(tmp_path / "quickstart"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    nb = nbformat.read(os.path.join(REPO, "notebooks", "quickstart.ipynb"), as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": os.path.join(REPO, "notebooks")}}).execute()
    assert (tmp_path / "quickstart" / "gates.png").stat().st_size > 1000
    assert (tmp_path / "quickstart" / "metrics.json").exists()
    outputs = "".join(o.get("text", "") for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs)
    assert "'digit': [" in outputs  # the gate weights were printed
