"""The Python API: moe_tf.Config builds and checks configs in code, moe_tf.train is what `moe-tf train` runs, and
moe_tf.load evaluates and predicts with a trained run."""

import json
import subprocess
import sys

import numpy as np
import pytest
import yaml

import moe_tf
from moe_tf.errors import ConfigError
from moe_tf.testing.configs import tiny_dict
from tests.conftest import REPO, run_main


def test_config_from_fields_dict_and_yaml_agree(tmp_path):
    data = tiny_dict()
    from_fields = moe_tf.Config(**data)
    from_dict = moe_tf.Config.from_dict(data)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(data))
    from_yaml = moe_tf.Config.from_yaml(tmp_path / "tiny.yaml")
    assert from_fields == from_dict == from_yaml
    assert moe_tf.Config.from_yaml(tmp_path / "tiny.yaml", ["training.epochs=5"]).training.epochs == 5
    changed = from_dict.override("model.experts.count=6", "training.batch_size=32")
    assert (changed.model.experts.count, changed.training.batch_size) == (6, 32)
    assert from_dict.model.experts.count == 3  # unchanged
    assert moe_tf.Config.from_dict(yaml.safe_load(changed.to_yaml())) == changed


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"training\.epochs.*-1"):
        moe_tf.Config(**tiny_dict(training={"epochs": -1}))
    with pytest.raises(ConfigError, match=r"model\.experts\.cont"):
        moe_tf.Config.from_dict(tiny_dict(), ["model.experts.cont=3"])
    with pytest.raises(ConfigError, match=r"tasks\[0\]\.dataset: unknown dataset 'nope'"):  # a cross-field rule
        moe_tf.Config(**tiny_dict(tasks=[{"name": "digit", "dataset": "nope"}]))
    with pytest.raises(ConfigError, match=r"missing\.yaml"):
        moe_tf.Config.from_yaml(f"{REPO}/configs/missing.yaml")


def test_importing_the_api_does_not_load_tensorflow():
    script = "import sys, moe_tf\nmoe_tf.Config, moe_tf.train, moe_tf.load\nprint('tensorflow' in sys.modules)\n"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.fixture(scope="module")
def api_and_cli_runs(tmp_path_factory):
    """The same config and seed trained by moe_tf.train and by `moe-tf train` (in this process)."""
    tmp = tmp_path_factory.mktemp("api")
    data = tiny_dict(training={"epochs": 1})
    (tmp / "tiny.yaml").write_text(yaml.safe_dump(data))
    result = moe_tf.train(tmp / "tiny.yaml", ["training.batch_size=32"], output_dir=tmp / "api")
    return tmp, result


def test_train_equals_the_cli_run(api_and_cli_runs, capsys):
    tmp, result = api_and_cli_runs
    code, _, err = run_main(
        capsys, "train", "--config", tmp / "tiny.yaml", "--set", "training.batch_size=32", "--output-dir", tmp / "cli"
    )
    assert code == 0, err
    cli = json.loads((tmp / "cli" / "metrics.json").read_text())
    assert result.tasks == cli["tasks"]
    assert result.metrics["step"] == cli["step"] > 0
    assert result.run_dir == str(tmp / "api") and result.export_dir == str(tmp / "api" / "export")
    assert result.config.training.batch_size == 32


def test_load_evaluates_and_predicts_as_the_export(api_and_cli_runs, capsys):
    tmp, result = api_and_cli_runs
    trained = moe_tf.load(result.run_dir)
    assert trained.evaluate("test")["tasks"] == result.tasks
    from sklearn.datasets import load_digits

    images = (load_digits().images[:40] * (255 / 16)).astype(np.uint8)[..., None]
    probabilities = trained.predict({"image": images})
    assert probabilities["digit"].shape == (40, 10) and probabilities["high"].shape == (40, 2)
    np.save(tmp / "x.npy", images)
    code, out, err = run_main(capsys, "predict", result.export_dir, "--input", tmp / "x.npy")
    assert code == 0, err
    served = [json.loads(line) for line in out.splitlines()]
    for task in ("digit", "high"):
        np.testing.assert_allclose(probabilities[task], [row[task]["probabilities"] for row in served], atol=2e-6)
    gates = trained.gate_weights(tmp / "x.npy")
    assert gates["digit"].shape == (40, 3)
    np.testing.assert_allclose(gates["digit"].sum(-1), 1.0, rtol=1e-5)
    assert trained.config.override("training.epochs=3").training.epochs == 3  # a Config, as train's
    with pytest.raises(moe_tf.errors.DataError, match="batch_size: expected an integer >= 1, got 0"):
        trained.predict({"image": images}, batch_size=0)
    with pytest.raises(moe_tf.errors.DataError, match="no examples"):
        trained.predict({"image": images[:0]})
    with pytest.raises(moe_tf.errors.DataError, match=r"inputs: \['pixels'\] not among the model's inputs \['image'\]"):
        trained.predict({"pixels": images})
