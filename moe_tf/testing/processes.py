"""`moe-tf train` processes the tests and the robustness benchmark start (the kill-and-resume config, start, finish),
reading their output with a deadline, and a run's peak memory."""

from __future__ import annotations

import os
import pathlib
import re
import select
import subprocess
import sys
import time

import yaml

from moe_tf.testing.configs import tiny_dict
from moe_tf.testing.files import write_tabular_npz


def read_until(stream, pattern, timeout=240):
    """Reads a process's pipe (`proc.stderr`, unread so far) until a line matches `pattern`; returns everything read,
    as lines. Fails when the process ends or `timeout` seconds pass first (a hung process fails the test)."""
    fd, text, deadline = stream.fileno(), "", time.monotonic() + timeout
    checked = 0  # complete lines already searched
    while True:
        lines = text.splitlines(keepends=True)
        complete = lines if text.endswith("\n") else lines[:-1]
        for line in complete[checked:]:
            if re.search(pattern, line):
                return lines
        checked = len(complete)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise AssertionError(f"{pattern!r} did not appear within {timeout} s:\n{text[-3000:]}")
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            raise AssertionError(f"the process ended before {pattern!r} appeared:\n{text[-3000:]}")
        text += chunk.decode(errors="replace")


def printed_steps(lines):
    """The steps of the progress lines (`step N  loss ...`) among `lines`."""
    return [int(m.group(1)) for line in lines for m in [re.search(r"\bstep (\d+)  loss", line)] if m]


STEPS = 60


def write_config(tmp_path: pathlib.Path) -> str:
    """Digits and a tabular file (two sources: the resumed run must redraw the same source schedule) under FAMO
    (state across steps: its logits, the last losses, Adam's moments, all in checkpoints)."""
    # batch 8: an epoch is 200 steps, so a multi-step graph call is long enough to be stopped inside
    data = tiny_dict(
        training={
            "steps": STEPS,
            "batch_size": 8,
            "eval_every": 20,
            "log_every": 5,
            "checkpoint_every": 10,
            "weighting": {"type": "famo", "learning_rate": 0.1},
            "deterministic": True,
        },
        logging={"progress": "lines", "gate_heatmap": False},
    )
    data["data"]["sources"]["tab"] = {
        "type": "npz",
        "path": write_tabular_npz(tmp_path / "tab.npz", n=200),
        "features": ["x"],
        "labels": ["kind", "score"],
    }
    data["tasks"] += [
        {"name": "kind", "dataset": "tab", "label": "kind", "type": "binary"},
        {"name": "score", "dataset": "tab", "label": "score", "type": "regression"},
    ]
    data["model"]["stems"] = {"numeric": {"type": "dense", "units": [8]}}
    data["model"]["fusion_units"] = 16
    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def start(config: str, run_dir: str, *extra: str) -> subprocess.Popen:
    """A `moe-tf train` process (no export: not what these tests check, and 20 % of a process's time)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "moe_tf", "train", "--config", config, "--output-dir", run_dir, "--no-export", *extra],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    """Waits for `proc` to end; returns the rest of its stderr."""
    _, rest = proc.communicate(timeout=timeout)
    return rest


def search_command(config, space, trials: int, output_dir, *extra: str) -> list[str]:
    """`moe-tf search` in a fresh Python process, as a command line."""
    inputs = ["--config", str(config), "--space", str(space), "--trials", str(trials), "--output-dir", str(output_dir)]
    return [sys.executable, "-m", "moe_tf", "search", *inputs, *extra]


def start_command(command: list[str], cwd: str | None = None) -> subprocess.Popen:
    """A moe-tf process with its stdout and stderr merged into one pipe (read it with `read_until`)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd, env=env)


# The child reports its own peak (VmHWM of its image after exec): the ru_maxrss os.wait4 gives also counts the forked
# copy of the parent before the exec, which may hold TensorFlow and generated data (it made a benchmark's figure a
# floor: the parent's size, the same to the MiB on every run).
_PEAK = (
    "import sys\n"
    "from moe_tf import cli\n"
    "code = cli.main(sys.argv[1:])\n"
    "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "print('PEAK', code, peak)\n"
)


def peak_rss_mib(*args: str, cwd: str, timeout: float = 1800) -> tuple[float | None, str]:
    """`moe-tf ARGS` in a fresh process: (its peak resident memory in MiB, or None when it failed; its stderr)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        timeout=timeout,
    )
    last = proc.stdout.strip().splitlines()[-1].split() if proc.stdout.strip() else []
    if proc.returncode != 0 or last[:2] != ["PEAK", "0"]:
        return None, proc.stderr
    return int(last[2]) / 1024, proc.stderr
