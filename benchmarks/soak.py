"""Soak: resident memory (RSS) of a long run of a tiny model with progress lines, TensorBoard and checkpoints on, at
step 1,000 against step 20,000 (goal: growth under 5 %); and the same for a run stopped with SIGTERM and resumed three
times (steps 5,000, 10,000, 15,000), where the last process's RSS at step 20,000 is compared with the first's at
step 1,000. RSS is read from /proc/<pid>/status when the step's progress line appears.

    python benchmarks/soak.py [--steps 20000] [--name soak]

Writes benchmarks/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.report import write_results  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def config(steps: int) -> dict:
    return {
        "experiment": {"name": "soak", "seed": 1},
        "data": {"sources": {"digits": {"type": "digits"}}},
        "tasks": [
            {"name": "digit", "dataset": "digits"},
            {"name": "high", "dataset": "digits", "type": "binary", "label_map": [0] * 5 + [1] * 5},
        ],
        "model": {
            "architecture": "mmoe",
            "stem": {"type": "conv", "filters": [8]},
            "trunk": {"units": [32]},
            "experts": {"count": 3, "units": [16]},
            "tower": {"units": [16]},
        },
        "training": {
            "steps": steps,
            "batch_size": 64,
            "log_every": 100,
            "eval_every": 1000,
            "checkpoint_every": 500,
            "optimizer": {"learning_rate": 0.003},
        },
        "logging": {"progress": "lines", "tensorboard": True, "gradient_stats_every": 1000},
    }


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def run(config_path: str, run_dir: str, resume: bool, stop_at: int | None, sample_at: set) -> tuple[dict, int]:
    """One `moe-tf train` process: {step: RSS kB} at the sampled steps' progress lines; SIGTERM once `stop_at` is
    printed. Returns (samples, exit code)."""
    args = [sys.executable, "-m", "moe_tf", "train", "--config", config_path, "--output-dir", run_dir]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = subprocess.Popen(
        args + (["--resume"] if resume else []),
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=env,
    )
    samples = {}
    for line in proc.stderr:
        match = re.search(r"\bstep (\d+)  loss", line)
        if not match:
            continue
        step = int(match.group(1))
        if step in sample_at:
            samples[step] = rss_kb(proc.pid)
        if stop_at is not None and step == stop_at:
            proc.send_signal(signal.SIGTERM)
    return samples, proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--name", default="soak")
    args = parser.parse_args()
    steps = args.steps
    scratch = tempfile.mkdtemp(prefix="moe_tf_soak_")
    try:
        path = os.path.join(scratch, "soak.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(config(steps), f)
        every = set(range(1000, steps + 1, 1000))
        straight, code = run(path, os.path.join(scratch, "straight"), False, None, every)
        assert code == 0, f"the straight run failed ({code})"
        print(
            f"  straight: RSS {straight[1000] / 1024:.1f} MiB at step 1000, {straight[steps] / 1024:.1f} MiB at "
            f"step {steps}",
            flush=True,
        )
        quarters = [steps // 4, steps // 2, 3 * steps // 4]
        resumed_dir = os.path.join(scratch, "resumed")
        segments = []
        for i, stop in enumerate([*quarters, None]):
            start = 0 if i == 0 else quarters[i - 1]
            sample = {s for s in every if s > start} | {start + 1000}
            samples, code = run(path, resumed_dir, i > 0, stop, sample)
            assert code == (3 if stop else 0), f"segment {i} exited {code}"
            segments.append(samples)
            print(
                f"  segment {i + 1}: "
                + ", ".join(
                    f"step {s} {v / 1024:.1f} MiB"
                    for s, v in sorted(samples.items())
                    if s in (start + 1000, stop or steps)
                ),
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    def growth(a, b):
        return 100.0 * (b - a) / a

    first, last = segments[0][1000], segments[-1][steps]
    lines = [
        f"Soak: a tiny digits MMoE for {steps:,} steps (batch 64) with progress lines, TensorBoard (train every "
        f"100 steps, eval and gate figures every 1,000, task-gradient stats every 1,000) and a checkpoint every "
        f"500 steps; RSS of the training process from /proc, {os.cpu_count()} CPUs",
        f"{'run':<44} {'RSS @1,000':>12} {'RSS @' + format(steps, ','):>12} {'growth':>8}",
        f"{'uninterrupted':<44} {straight[1000] / 1024:>9.1f} MiB {straight[steps] / 1024:>9.1f} MiB "
        f"{growth(straight[1000], straight[steps]):>7.2f}%",
        f"{'stopped (SIGTERM) and resumed 3 times':<44} {first / 1024:>9.1f} MiB {last / 1024:>9.1f} MiB "
        f"{growth(first, last):>7.2f}%",
        "RSS every 1,000 steps (MiB), uninterrupted: "
        + " ".join(f"{straight[s] / 1024:.1f}" for s in sorted(straight)),
        "each resumed segment, RSS 1,000 steps after its start → at its end (MiB): "
        + "; ".join(
            f"{segments[i][min(segments[i])] / 1024:.1f} → {segments[i][max(segments[i])] / 1024:.1f}"
            for i in range(len(segments))
        ),
    ]
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
