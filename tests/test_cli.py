"""The `moe-tf` command line: errors without tracebacks (in a fresh process once, and in this process through
`cli.main`, which prints the same message), the demo config end to end."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from moe_tf.config.loader import validate_config
from tests.conftest import REPO, run_cli, run_main, tiny_dict


def test_validate_prints_resolved_config(capsys):
    code, out, err = run_main(
        capsys, "validate", f"{REPO}/configs/digits_shared_bottom.yaml", "--set", "training.epochs=3"
    )
    assert code == 0, err
    resolved = yaml.safe_load(out)
    assert resolved["model"]["architecture"] == {"type": "shared_bottom"} and resolved["training"]["epochs"] == 3
    assert resolved["model"]["experts"]["count"] == 4  # from the base file


def test_bad_config_exits_2_naming_the_path(tmp_path, capsys):
    data = tiny_dict(model={"experts": {"count": "four"}})
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    proc = run_cli("train", "--config", str(tmp_path / "bad.yaml"))  # a real process: no traceback
    assert proc.returncode == 2
    assert "model.experts.count: expected int >= 1, got 'four'" in proc.stderr
    assert "Traceback" not in proc.stderr
    code, _, err = run_main(capsys, "validate", str(tmp_path / "bad.yaml"))
    assert (
        code == 2
        and f"moe-tf validate: error: {tmp_path / 'bad.yaml'}: model.experts.count: expected int >= 1, got 'four'"
        in err
    )


def test_missing_files_are_named(tmp_path, capsys):
    code, _, err = run_main(capsys, "train", "--config", str(tmp_path / "nope.yaml"))
    assert code == 2 and f"config file not found: {tmp_path}/nope.yaml" in err
    data = tiny_dict(data={"sources": {"digits": {"type": "idx", "path": str(tmp_path / "missing")}}})
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    code, _, err = run_main(
        capsys, "train", "--config", str(tmp_path / "c.yaml"), "--output-dir", str(tmp_path / "run")
    )
    assert code == 1 and f"IDX directory not found: {tmp_path}/missing" in err
    code, _, err = run_main(capsys, "evaluate", str(tmp_path / "nothing"))
    assert code == 1 and "is not a run directory" in err


@pytest.mark.slow
def test_demo_config_end_to_end(tmp_path, capsys):
    """`make demo`'s config through scripts/train.py (3 epochs), then evaluate the run; training into it again is
    refused."""
    run_dir = tmp_path / "demo"
    proc = subprocess.run(
        [
            sys.executable,
            "scripts/train.py",
            "--config",
            "configs/digits_mmoe.yaml",
            "--set",
            "training.epochs=3",
            "--output-dir",
            str(run_dir),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "trainable parameters" in proc.stderr and "test results:" in proc.stderr
    assert "tensorboard --logdir" in proc.stderr
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["tasks"]["digit"]["accuracy"] > 0.6 and metrics["tasks"]["high"]["accuracy"] > 0.7
    assert (run_dir / "export" / "saved_model.pb").exists()
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["training"]["epochs"] == 3
    code, out, err = run_main(capsys, "evaluate", str(run_dir), "--json")
    assert code == 0, err[-3000:]
    evaluated = json.loads(out)
    for task in ("digit", "high"):  # the restored checkpoint reproduces the end-of-training test metrics
        assert evaluated["tasks"][task]["accuracy"] == pytest.approx(metrics["tasks"][task]["accuracy"], abs=1e-6)
    code, _, err = run_main(
        capsys, "train", "--config", f"{REPO}/configs/digits_mmoe.yaml", "--output-dir", str(run_dir)
    )
    assert code == 1 and "already holds a run" in err


def test_evaluate_a_split_the_run_does_not_have(tmp_path, capsys):
    from moe_tf.run import train

    config = validate_config(tiny_dict(data={"sources": {"digits": {"eval_fraction": 0.0}}}, training={"steps": 2}))
    train(config, str(tmp_path / "run"), export=False)
    code, _, err = run_main(capsys, "evaluate", str(tmp_path / "run"), "--split", "eval")
    assert code == 1, err[-2000:]
    assert "no 'eval' split to evaluate: the data sources have {'digits': 0} eval examples" in err
    code, out, _ = run_main(capsys, "evaluate", str(tmp_path / "run"), "--split", "test", "--json")
    assert code == 0 and json.loads(out)["step"] == 2
