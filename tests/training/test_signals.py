"""Stopping and restarting for real, in fresh processes: SIGTERM ends training after the current step with a
checkpoint, exit code 3 and the resume command; SIGKILL landing at two different steps between checkpoints loses
nothing but the steps since the last checkpoint; the resumed run ends with the metrics and every checkpointed tensor
of an uninterrupted one, and its TensorBoard curves have each step once, with the same values.

Every process runs with `training.deterministic: true` (op determinism is process-wide, so it is checked here, in
fresh processes): the runs end bit-identical."""

import json
import os
import re
import signal

import numpy as np
import pytest

from moe_tf.testing.processes import STEPS, finish, printed_steps, read_until, start, write_config
from tests.logging.test_tensorboard import read_scalars
from tests.training.test_trainer import _weights

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run: (metrics, run directory)."""
    tmp = tmp_path_factory.mktemp("reference")
    proc = start(write_config(tmp), str(tmp / "run"))
    rest = finish(proc)
    assert proc.returncode == 0, rest[-3000:]
    return json.loads((tmp / "run" / "metrics.json").read_text()), str(tmp / "run")


def same_metrics(a, reference):
    b, _ = reference
    assert a["step"] == b["step"] == STEPS
    assert a["loss"] == b["loss"]
    assert a["tasks"] == b["tasks"]


def test_two_kills_and_a_sigterm_then_resume_match_an_uninterrupted_run(tmp_path, reference):
    """One run, four processes: SIGKILLed after step 25 and after step 45 (between checkpoints, so steps are lost and
    replayed), stopped with SIGTERM inside the next multi-step graph call, and finished with the printed command."""
    config, run_dir = write_config(tmp_path), str(tmp_path / "run")
    resumed_from = []
    proc = start(config, run_dir)
    for extra, trigger in (((), 25), (("--resume",), 45)):
        if extra:
            proc = start(config, run_dir, *extra)
        lines = read_until(proc.stderr, rf"\bstep {trigger}  loss")
        assert re.search(
            r"deterministic: TensorFlow op determinism on; CPU only, where all \d+ op types of the "
            r"training step have deterministic kernels",
            "".join(lines),
        )
        proc.kill()  # SIGKILL: no handler runs
        lines += finish(proc).splitlines(keepends=True)
        assert proc.returncode == -signal.SIGKILL
        checkpoints = sorted(
            int(p.split("-")[1].split(".")[0])
            for p in os.listdir(os.path.join(run_dir, "checkpoints"))
            if p.endswith(".index")
        )
        resumed_from.append(checkpoints[-1])
        # the kill landed after steps the last checkpoint does not hold: they are lost and replayed
        assert max(printed_steps(lines)) > checkpoints[-1], (printed_steps(lines), checkpoints)
    assert resumed_from[0] != resumed_from[1]

    # SIGTERM while the first graph call after the resume is traced: that call would run the 5 steps up to the next
    # log step in one go; the request ends it after its first step
    proc = start(config, run_dir, "--resume")
    read_until(proc.stderr, r"^epoch 1/")
    proc.send_signal(signal.SIGTERM)
    rest = finish(proc)
    assert proc.returncode == 3, rest[-3000:]
    match = re.search(r"stopped: SIGTERM at step (\d+): checkpoint written \((.+)\)", rest)
    assert match, rest[-3000:]
    stopped = int(match.group(1))
    assert resumed_from[1] < stopped < resumed_from[1] + 5  # inside the call, not at its end
    assert match.group(2).endswith(f"ckpt-{stopped}") and os.path.exists(match.group(2) + ".index")
    command = re.search(r"Resume with:\n\s+(moe-tf train .*--resume)", rest).group(1)
    assert command == f"moe-tf train --config {run_dir}/config.yaml --output-dir {run_dir} --resume"
    assert not os.path.exists(os.path.join(run_dir, "metrics.json"))

    proc = start(os.path.join(run_dir, "config.yaml"), run_dir, "--resume")  # the printed command
    rest = finish(proc)
    assert proc.returncode == 0, rest[-3000:]
    assert f"resumed from step {stopped}" in rest
    same_metrics(json.loads(open(os.path.join(run_dir, "metrics.json")).read()), reference)
    # every checkpointed tensor: weights, optimizer slots and step, FAMO's state (which moved), the source schedule,
    # the partly summed statistics of the log interval the SIGTERM cut
    a, b = _weights(reference[1]), _weights(run_dir)
    assert a.keys() == b.keys() and any(n.startswith("weighting/logits") for n in a)
    assert np.ptp(a[next(n for n in a if n.startswith("weighting/logits"))]) > 1e-3
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)

    # TensorBoard: across the four processes, each logged step once, with the uninterrupted run's values
    scalars, expected = read_scalars(os.path.join(run_dir, "logs")), read_scalars(os.path.join(reference[1], "logs"))
    assert [s for s, _ in scalars["train/loss"]] == list(range(5, STEPS + 1, 5))
    assert [s for s, _ in scalars["eval/loss"]] == [20, 40, 60]
    assert [s for s, _ in scalars["test/loss"]] == [STEPS]
    for tag in ("train/loss", "eval/loss", "test/loss"):
        assert scalars[tag] == expected[tag], tag
