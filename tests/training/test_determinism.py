"""`training.deterministic: true` turns on TensorFlow op determinism (said when the run starts): two runs in a fresh
process (op determinism is process-wide) end with bit-identical weights."""

import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, tiny_dict
from tests.training.test_trainer import _weights

SCRIPT = """
import sys
from moe_tf.config.loader import load_config
from moe_tf.run import train
config = load_config(sys.argv[1])
for run_dir in sys.argv[2:]:
    train(config, run_dir, export=False)
"""


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(tiny_dict(training={"steps": 8, "deterministic": True, "log_every": 4},
                                               logging={"progress": "lines"})))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(config), str(tmp_path / "a"), str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("deterministic: TensorFlow op determinism on (CPU only") == 2
    a, b = _weights(str(tmp_path / "a")), _weights(str(tmp_path / "b"))
    assert a.keys() == b.keys() and len(a) > 10
    for name in a:
        assert (a[name] == b[name]).all(), name
