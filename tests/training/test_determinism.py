"""`training.deterministic: true` turns on TensorFlow op determinism (said when the run starts): two fresh
processes end with bit-identical weights."""

import pytest
import yaml

from tests.conftest import run_cli, tiny_dict
from tests.training.test_trainer import _weights


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_dict(training={"steps": 8, "deterministic": True, "log_every": 4},
                                               logging={"progress": "lines"})))
    runs = []
    for name in ("a", "b"):
        proc = run_cli("train", "--config", config, "--output-dir", tmp_path / name)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "deterministic: TensorFlow op determinism on (CPU only" in proc.stderr
        runs.append(_weights(str(tmp_path / name)))
    a, b = runs
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        assert (a[name] == b[name]).all(), name
