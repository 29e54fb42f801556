"""`moe-tf search` across processes on a real PostgreSQL server (started on loopback, moe_tf.testing.postgres):
trials per minute with one and with two search processes on one study (2 cores: expect little gain; the point is
correctness), and the time from SIGKILLing one process inside a trial to the survivor starting that trial again
with `--heartbeat 2` (three missed heartbeats, then the survivor's next look).

    python benchmarks/search_postgres.py [--trials 6] [--steps 30] [--name search_postgres]

Writes benchmarks/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
import tempfile
import time

import yaml

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks.report import write_results  # noqa: E402
from moe_tf.testing.configs import tiny_dict  # noqa: E402
from moe_tf.testing.postgres import local_server  # noqa: E402
from moe_tf.testing.processes import read_until, search_command  # noqa: E402
from moe_tf.testing.processes import start_command as start  # noqa: E402

SPACE = {
    "metric": "eval/digit/accuracy",
    "sampler": {"type": "random"},
    "params": {"training.optimizer.learning_rate": {"float": [1e-3, 0.1], "log": True}},
}


def command(work, url, study, output, trials, *extra):
    storage = ["--storage", url, "--study-name", study, "--heartbeat", "2"]
    return search_command(f"{work}/base.yaml", f"{work}/space.yaml", trials, f"{work}/{output}", *storage, *extra)


def timed(procs) -> float:
    started = time.perf_counter()
    for proc in procs:
        out = proc.communicate(timeout=1800)[0]
        if proc.returncode != 0:
            raise SystemExit(out[-3000:])
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--name", default="search_postgres")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="moe_tf_search_pg_")
    with open(f"{work}/base.yaml", "w") as f:
        yaml.safe_dump(tiny_dict(training={"steps": args.steps, "eval_every": args.steps}), f)
    with open(f"{work}/space.yaml", "w") as f:
        yaml.safe_dump(SPACE, f)
    lines = [
        f"digits tiny config, {args.steps} steps per trial, {args.trials} trials, PostgreSQL on loopback, "
        f"{os.cpu_count()} CPUs; wall time includes each process's start (TensorFlow import)"
    ]
    with local_server() as url:
        one = timed([start(command(work, url, "one", "one", args.trials, "--seed", "1"))])
        two = timed(
            [
                start(command(work, url, "two", out, args.trials, "--seed", str(s)))
                for out, s in (("two_a", 1), ("two_b", 2))
            ]
        )
        lines.append(f"one process:   {args.trials / one * 60:.1f} trials/min ({one:.1f} s)")
        lines.append(f"two processes: {args.trials / two * 60:.1f} trials/min ({two:.1f} s); ratio {one / two:.2f}")
        survivor = start(command(work, url, "kill", "survivor", args.trials, "--seed", "1"))
        victim = start(command(work, url, "kill", "victim", args.trials, "--seed", "2"))
        started = read_until(victim.stdout, r"^trial \d+ started", timeout=600)
        number = re.search(r"^trial (\d+) started", started[-1]).group(1)
        victim.send_signal(signal.SIGKILL)
        killed = time.perf_counter()
        victim.wait(timeout=30)
        read_until(survivor.stdout, rf"^trial \d+ \(trial {number} again\) started", timeout=600)
        rerun = time.perf_counter() - killed
        survivor.kill()
        lines.append(
            f"SIGKILL inside trial {number} -> the survivor starts it again: {rerun:.1f} s "
            "(--heartbeat 2: stale after 6 s, then the survivor's next look)"
        )
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
