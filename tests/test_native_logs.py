"""The CLI hides TensorFlow's native start-up chatter unless asked, and shows everything else."""

import os
import re
import subprocess
import sys

import pytest

from moe_tf.native_logs import hidden_chatter, is_chatter
from tests.conftest import REPO, run_cli

START_UP = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796520318.277717    6657 port.cc:153] oneDNN custom operations are on. You may see slightly",
    "I0000 00:00:1796520318.278018    6657 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will",
    "E0000 00:00:1796520322.343773    6657 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed",
    "E0000 00:00:1796524320.081629   24543 util.cc:131] oneDNN supports DT_BOOL only on platforms with AVX-512. "
    "Falling back to the default Eigen-based implementation if present.",
    "W1204 10:11:12.123456  123 cpu_feature_guard.cc:227] This TensorFlow binary is optimized",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
]
REAL = [
    "E0000 00:00:1796520322.343773    6657 op_kernel.cc:1857] OP_REQUIRES failed at conv_ops.cc: RESOURCE_EXHAUSTED",
    "F1204 10:11:12.123456  123 check.cc:12] Check failed: shape",
    "Traceback (most recent call last):",
    "moe-tf train: config error: training.epochs: must be >= 1",
]


def test_start_up_lines_are_chatter_and_errors_are_not():
    assert [is_chatter(line) for line in START_UP] == [True] * len(START_UP)
    assert [is_chatter(line) for line in REAL] == [False] * len(REAL)


def test_hidden_chatter_writes_back_everything_else(capfd):
    with hidden_chatter():
        os.write(2, ("\n".join(START_UP[:2] + REAL[:1] + START_UP[2:] + REAL[1:]) + "\n").encode())
        os.write(2, b"from python\n")
    assert capfd.readouterr().err.splitlines() == REAL + ["from python"]


@pytest.mark.parametrize("log_level", [None, "0"])  # moe-tf's default, and TensorFlow's own
def test_validate_writes_nothing_to_stderr(log_level):
    env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}
    if log_level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = log_level
    proc = subprocess.run(
        [sys.executable, "-m", "moe_tf", "validate", "configs/digits_mmoe.yaml"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "experiment:" in proc.stdout


def test_train_writes_no_native_lines(tmp_path):
    """Through a whole run (start-up, the first step, evaluation, export) stderr holds moe-tf's own lines only."""
    proc = run_cli(
        "train", "--config", "configs/digits_mmoe.yaml", "--output-dir", tmp_path / "run",
        "--set", "training.steps=20", "--set", "logging.progress=lines",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    native = re.compile(r"[IWEF]\d{4} |WARNING: All log messages")
    assert [line for line in proc.stderr.splitlines() if native.match(line)] == []
    assert "step 20" in proc.stderr and "exported SavedModel" in proc.stdout + proc.stderr


def test_verbose_shows_the_native_logs():
    proc = run_cli("--verbose", "validate", "configs/digits_mmoe.yaml")
    assert proc.returncode == 0, proc.stderr
    assert any(is_chatter(line) for line in proc.stderr.splitlines()), proc.stderr


def test_help_and_version_do_not_import_tensorflow():
    script = (
        "import sys\nfrom moe_tf import cli\n"
        "for argv in (['--help'], ['--version'], ['train', '--help']):\n"
        "    try:\n        cli.main(argv)\n    except SystemExit as e:\n        assert e.code == 0, argv\n"
        "print('tensorflow' in sys.modules, 'keras' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "False False"
    assert "moe-tf 0.1.0 (TensorFlow 2." in proc.stdout and "--verbose" in proc.stdout


def test_a_line_before_a_crash_still_reaches_stderr():
    """Lines pass as they arrive: a native fatal error's message shows although the process aborts before the block
    ends."""
    script = (
        "import os, time\nfrom moe_tf.native_logs import hidden_chatter\nwith hidden_chatter():\n"
        f"    os.write(2, b'{START_UP[1]}\\n{REAL[1]}\\n')\n    time.sleep(1)\n    os.abort()\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode != 0
    assert proc.stderr.splitlines() == [REAL[1]]
