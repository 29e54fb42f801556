"""Checkpoints at `--resume`: an unreadable latest checkpoint falls back to the previous one (named in a warning,
set aside, never deleted), a stale or garbled state file does not hide the checkpoints, a checkpoint of another
model is an error rather than a fallback, and a NaN is never written."""

import os
import shutil

import numpy as np
import pytest

from moe_tf.errors import MoeTfError
from moe_tf.run import train
from moe_tf.training.checkpoints import Checkpointer
from tests.conftest import run_main, tiny_config
from tests.training.test_trainer import _weights


def config(steps, **sections):
    return tiny_config(
        training={"steps": steps, "checkpoint_every": 10, "eval_every": 10, "keep_checkpoints": 3}, **sections
    )


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """An uninterrupted 40-step run."""
    run_dir = str(tmp_path_factory.mktemp("runs") / "straight")
    train(config(40), run_dir, export=False)
    return run_dir


@pytest.fixture(scope="module")
def trained_to_30(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("runs") / "to30")
    train(config(30), run_dir, export=False)
    return run_dir


@pytest.fixture
def stopped_at_30(trained_to_30, tmp_path):
    """A copy of a run trained to step 30 (checkpoints 10, 20, 30) that a test may break: (run dir, checkpoints)."""
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained_to_30, run_dir)
    return run_dir, os.path.join(run_dir, "checkpoints")


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous(stopped_at_30, tmp_path, straight, capsys):
    run_dir, root = stopped_at_30
    data = next(f for f in os.listdir(root) if f.startswith("ckpt-30.data"))
    with open(os.path.join(root, data), "r+b") as f:
        f.truncate(64)
    dump = tmp_path / "c.yaml"
    dump.write_text(open(os.path.join(run_dir, "config.yaml")).read().replace("steps: 30", "steps: 40"))
    code, _, err = run_main(
        capsys, "train", "--config", dump, "--output-dir", run_dir, "--resume", "--set", "logging.progress=lines"
    )
    assert code == 0, err
    assert f"warning: checkpoint {root}/ckpt-30 cannot be read" in err
    assert f"resuming from {root}/ckpt-20 instead" in err and "resumed from step 20" in err
    assert sorted(os.listdir(os.path.join(root, "corrupt"))) == ["ckpt-30.data-00000-of-00001", "ckpt-30.index"]
    # steps 21..40 were replayed from step 20: the same weights as the run that was never interrupted
    a, b = _weights(straight), _weights(run_dir)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_a_garbled_state_file_does_not_hide_the_checkpoints(stopped_at_30, tmp_path, capsys):
    """Resumed from step 30, not started afresh (which would also end at step 40): the log says so, and only the
    evaluation at step 40 runs in this process (a fresh start would evaluate at 10, 20, 30 and 40)."""
    run_dir, root = stopped_at_30
    with open(os.path.join(root, "checkpoint"), "w") as f:
        f.write("model_checkpoint_path: {{{ garbage")
    evaluated = []
    metrics = train(
        config(40, logging={"progress": "lines"}),
        run_dir,
        resume=True,
        export=False,
        observer=lambda step, summary: evaluated.append(step),
    )
    assert metrics["step"] == 40
    assert "resumed from step 30" in capsys.readouterr().err
    assert evaluated == [40]
    assert not os.path.exists(os.path.join(root, "corrupt"))


def test_no_readable_checkpoint_is_an_error_that_moves_nothing(stopped_at_30, tmp_path, capsys):
    run_dir, root = stopped_at_30
    for f in os.listdir(root):
        if ".data-" in f:
            os.remove(os.path.join(root, f))
    before = sorted(os.listdir(root))
    dump = tmp_path / "c.yaml"
    dump.write_text(open(os.path.join(run_dir, "config.yaml")).read())
    code, _, err = run_main(capsys, "train", "--config", dump, "--output-dir", run_dir, "--resume")
    assert code == 1 and "Traceback" not in err
    assert f"no checkpoint in {root} can be read" in err and "ckpt-30" in err and "ckpt-10" in err
    assert sorted(os.listdir(root)) == before


def test_a_checkpoint_of_another_model_is_an_error_not_a_fallback(stopped_at_30, tmp_path):
    run_dir, root = stopped_at_30
    wider = tiny_config(model={"experts": {"count": 3, "units": [24]}})
    from moe_tf.components import build_components

    parts = build_components(wider)
    checkpointer = Checkpointer(run_dir, True, 3, model=parts.model, optimizer=parts.optimizer)
    with pytest.raises(MoeTfError, match="does not match the model"):
        checkpointer.restore_latest()
    assert not os.path.exists(os.path.join(root, "corrupt"))


def test_nonfinite_weights_are_never_written(tmp_path):
    from moe_tf.components import build_components

    parts = build_components(tiny_config())
    checkpointer = Checkpointer(str(tmp_path), True, 3, model=parts.model, optimizer=parts.optimizer)
    checkpointer.save(1)
    variable = parts.model.trainable_variables[0]
    variable.assign(np.full(variable.shape, np.nan, np.float32))
    with pytest.raises(MoeTfError, match=r"not writing the checkpoint of step 2: 1 variable\(s\) hold a NaN"):
        checkpointer.save(2)
    assert sorted(f for f in os.listdir(tmp_path / "checkpoints") if f.endswith(".index")) == ["ckpt-1.index"]


def test_dropout_seed_generators_have_the_same_keys_in_every_build():
    """Keras numbers seed generators process-wide; a search builds one model per trial in one process, and a trial's
    checkpoint must restore into the model a fresh process builds (it did not: `seed_generator_6` vs `_4`)."""
    from moe_tf.components import build_components
    from moe_tf.training.checkpoints import model_variables

    config = tiny_config(model={"dropout": 0.2})
    first = model_variables(build_components(config, training=False).model)
    second = model_variables(build_components(config, training=False).model)  # built after: other Keras numbers
    assert [k for k in first if "seed_generator" in k]
    assert list(first) == list(second)
