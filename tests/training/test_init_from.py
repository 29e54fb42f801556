"""`train --init-from`: variables restored by name, new tasks fresh, shape changes skipped, frozen parts kept,
the warm-up ramp."""

import json

import numpy as np
import pytest
import tensorflow as tf
import yaml

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.errors import ConfigError
from moe_tf.training.checkpoints import model_variables
from moe_tf.training.init_from import checkpoint_of, init_from, read_checkpoint
from tests.conftest import run_main, tiny_dict

ODD = {"name": "odd", "dataset": "digits", "type": "binary", "label_map": [0, 1, 0, 1, 0, 1, 0, 1, 0, 1]}


def with_new_task(**sections):
    config = tiny_dict(**sections)
    config["tasks"] = [*config["tasks"], ODD]
    return config


def test_restores_shared_and_old_task_variables_by_name(trained_run):
    old_dir, _ = trained_run
    old, _ = read_checkpoint(checkpoint_of(old_dir))
    parts = build_components(validate_config(with_new_task()), training=False)
    report = init_from(old_dir, parts.model)
    variables = model_variables(parts.model)
    assert report["skipped"] == [] and report["unused"] == []
    assert sorted(report["new"]) == sorted(n for n in variables if "_odd" in n)
    assert {n.split("/")[-2] for n in report["new"]} >= {"logits", "dense_0"}  # gate, tower and head of `odd`
    assert len(report["new"]) == 6  # gate kernel+bias, tower kernel+bias, head kernel+bias
    assert sorted(report["restored"]) == sorted(old)
    for name in report["restored"]:
        np.testing.assert_array_equal(variables[name].numpy(), old[name])


def test_a_changed_shape_is_skipped_with_both_shapes(trained_run):
    old_dir, _ = trained_run
    parts = build_components(validate_config(tiny_dict(model={"experts": {"count": 4}})), training=False)
    report = init_from(old_dir, parts.model)
    skipped = {s["variable"]: s["reason"] for s in report["skipped"]}
    assert (
        skipped["moe_tf_model/mixture/level_0/experts_shared/kernel_0"]
        == "shape [3, 32, 16] in the old run, [4, 32, 16] here"
    )
    assert (
        skipped["moe_tf_model/mixture/level_0/gate_digit/logits/kernel"] == "shape [32, 3] in the old run, [32, 4] here"
    )
    assert "moe_tf_model/tower_digit/dense_0/kernel" in report["restored"]


def test_cli_run_keeps_frozen_parts_and_logs_what_it_restored(trained_run, tmp_path, capsys):
    old_dir, _ = trained_run
    old, _ = read_checkpoint(checkpoint_of(old_dir))
    config = with_new_task(model={"freeze": ["stems", "trunk", "experts"]}, training={"steps": 12, "epochs": 1})
    config["tasks"][2]["warmup_steps"] = 6
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(config))
    code, out, err = run_main(
        capsys,
        "train",
        "--config",
        tmp_path / "new.yaml",
        "--output-dir",
        tmp_path / "run",
        "--init-from",
        old_dir,
        "--set",
        "logging.progress=lines",
    )
    assert code == 0, err
    assert f"init from {checkpoint_of(old_dir)}: restored {len(old)} variables, 6 new, 0 skipped" in err
    assert "  new (fresh initialisation): moe_tf_model/head_odd/kernel" in err
    report = json.loads((tmp_path / "run" / "init_from.json").read_text())
    assert len(report["new"]) == 6
    after, _ = read_checkpoint(tf.train.latest_checkpoint(str(tmp_path / "run" / "checkpoints")))
    frozen = [n for n in old if "/encoder_" in n or "/trunk/" in n or "/experts_" in n]
    trained = [n for n in old if "/gate_" in n or "/tower_" in n or "/head_" in n]
    assert len(frozen) >= 6 and len(trained) >= 8
    for name in frozen:
        np.testing.assert_array_equal(after[name], old[name])
    assert all(not np.array_equal(after[n], old[n]) for n in trained)


def test_warm_up_ramps_a_task_loss(trained_run):
    config = validate_config(with_new_task())
    config.tasks[2].warmup_steps = 4
    parts = build_components(config)
    losses = {"digit": tf.constant(2.0), "high": tf.constant(1.0), "odd": tf.constant(3.0)}
    trainer = parts.trainer()
    for step, factor in ((0, 0.0), (1, 0.25), (3, 0.75), (4, 1.0), (40, 1.0)):
        ramped = trainer._warmed_up(losses, tf.constant(step, tf.int64))
        assert float(ramped["odd"]) == pytest.approx(3.0 * factor) and float(ramped["digit"]) == 2.0


def test_warm_up_with_gradient_surgery_is_refused():
    config = with_new_task(training={"weighting": "pcgrad"})
    config["tasks"][2]["warmup_steps"] = 5
    with pytest.raises(ConfigError, match=r"tasks\[2\]\.warmup_steps: pcgrad combines the tasks' gradients"):
        validate_config(config)


def test_freezing_a_part_the_model_lacks():
    with pytest.raises(ConfigError, match=r"model\.freeze: this model has no gates to freeze \(shared_bottom\)"):
        build_components(
            validate_config(tiny_dict(model={"architecture": "shared_bottom", "freeze": ["gates"]})), training=False
        )


def test_bad_init_from(tmp_path, capsys):
    code, _, err = run_main(capsys, "train", "--config", f"{tmp_path}/../nope.yaml", "--init-from", tmp_path)
    assert code == 2  # the config is checked first
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(tiny_dict()))
    code, _, err = run_main(
        capsys,
        "train",
        "--config",
        tmp_path / "c.yaml",
        "--output-dir",
        tmp_path / "run",
        "--init-from",
        tmp_path / "missing",
    )
    assert (
        code == 1 and err.strip() == f"moe-tf train: error: --init-from {tmp_path / 'missing'}: no such run directory"
    )
    code, _, err = run_main(
        capsys, "train", "--config", tmp_path / "c.yaml", "--output-dir", tmp_path / "run", "--init-from", tmp_path
    )
    assert code == 1 and "no checkpoint in" in err
