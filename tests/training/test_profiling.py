"""`training.profile` / `moe-tf train --profile`: a profiler trace of exactly the configured steps in the run's
TensorBoard logs, read back through the profile plugin's own converter."""

from __future__ import annotations

import importlib.util
import os

import pytest
import yaml

from moe_tf.training.profiling import ProfileWindow, top_ops, trace_files
from tests.conftest import run_main, tiny_dict

# Only reading a trace back (top_ops) needs xprof; the window arithmetic and the refusals do not.
needs_xprof = pytest.mark.skipif(
    importlib.util.find_spec("xprof") is None, reason="tensorboard-plugin-profile (the dev extra) reads the trace"
)


def write_config(tmp_path, **sections) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(tiny_dict(**sections)))
    return str(path)


@needs_xprof
def test_profile_traces_exactly_the_configured_steps(tmp_path, capsys):
    # Steps 3 and 4 of 8 lie inside the first 5-step log interval, which is otherwise one graph call: the trainer
    # must cut its calls at both edges of the window for the trace to hold exactly two steps.
    config = write_config(tmp_path, training={"steps": 8, "log_every": 5}, logging={"progress": "lines"})
    run_dir = tmp_path / "run"
    code, _, err = run_main(
        capsys, "train", "--config", config, "--output-dir", run_dir, "--no-export", "--profile", "3:2"
    )
    assert code == 0, err
    assert f"profile of steps 3–4 written to {run_dir}/logs/train/plugins/profile" in err
    traces = trace_files(str(run_dir / "logs" / "train"))
    assert len(traces) == 1
    ops = top_ops(traces[0], count=1000)
    assert ops and ops[0]["self_ms"] > 0 and abs(sum(op["share"] for op in ops) - 1.0) < 1e-6
    # The one conv layer's filter gradient runs once per step (its input, the image, needs no gradient).
    filter_grads = [op for op in ops if "Conv2DBackpropFilter" in op["type"]]
    assert [op["occurrences"] for op in filter_grads] == [2], filter_grads
    assert conv_forwards(ops) == 2
    # The window is part of the run's config, so a resumed run would trace the same steps.
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["training"]["profile"] == {
        "start_step": 3,
        "num_steps": 2,
    }


@needs_xprof
def test_a_window_cut_short_by_the_end_of_training_is_still_written(tmp_path, capsys):
    config = write_config(
        tmp_path, training={"steps": 4, "log_every": 2, "profile": {"start_step": 3}}, logging={"progress": "lines"}
    )
    code, _, err = run_main(capsys, "train", "--config", config, "--output-dir", tmp_path / "run", "--no-export")
    assert code == 0, err
    assert "profile of steps 3–3 written to" in err
    traces = trace_files(str(tmp_path / "run" / "logs" / "train"))
    assert len(traces) == 1
    # The last step only: the final evaluation (three eval batches, each a forward convolution) is not traced.
    assert conv_forwards(top_ops(traces[0], count=1000)) == 1


def conv_forwards(ops) -> int:
    """Forward convolutions in a trace's op table (oneDNN's or Eigen's fused kernel, or the plain op)."""
    return sum(op["occurrences"] for op in ops if op["type"] in ("_MklNativeFusedConv2D", "_FusedConv2D", "Conv2D"))


def test_every_worker_cuts_its_graph_calls_at_the_window_whether_it_traces_or_not():
    # Under multi_worker only the chief traces, but the workers' graph calls (and the stop vote after each) must
    # line up, so a worker that does not trace cuts its calls at the same steps.
    from moe_tf.config.schema import ProfileConfig

    window = ProfileConfig(start_step=3, num_steps=2)
    assert ProfileWindow(window, None).cuts(0) == ProfileWindow(window, "/logs/train").cuts(0) == [3, 5]
    assert ProfileWindow(window, None).cuts(4) == [5] and ProfileWindow(window, None).cuts(5) == []
    assert ProfileWindow(None, "/logs/train").cuts(0) == []


@pytest.mark.parametrize(
    "flag, message",
    [
        ("x", "--profile: expected START_STEP or START_STEP:NUM_STEPS (e.g. 20:5), got 'x'"),
        ("3:0", "--profile: expected START_STEP or START_STEP:NUM_STEPS (e.g. 20:5), got '3:0'"),
        ("-1", "--profile: expected START_STEP or START_STEP:NUM_STEPS (e.g. 20:5), got '-1'"),
        ("40", "training.profile.start_step: 40 is not a step of this run (it trains steps 0–7)"),
    ],
)
def test_bad_profile_windows_are_refused(tmp_path, capsys, flag, message):
    config = write_config(tmp_path, training={"steps": 8})
    code, _, err = run_main(capsys, "train", "--config", config, "--output-dir", tmp_path / "run", f"--profile={flag}")
    assert code == 2 and message in err
    assert not os.path.exists(tmp_path / "run" / "logs" / "train" / "plugins")


def test_profile_config_keys_are_checked(tmp_path, capsys):
    config = write_config(tmp_path, training={"profile": {"start_step": 2, "steps": 3}})
    code, _, err = run_main(capsys, "validate", config)
    assert code == 2 and "training.profile.steps" in err
