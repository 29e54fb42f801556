"""A TensorFlow profiler trace of a window of training steps, in the run's TensorBoard logs.

`training.profile: {start_step, num_steps}` (or `moe-tf train --profile [START[:STEPS]]`) traces steps
start_step … start_step + num_steps - 1 into `<run>/logs/train/plugins/profile/<time>/<host>.xplane.pb`, where
TensorBoard's Profile tab (`pip install tensorboard-plugin-profile`) shows it under the run's `train` sub-run, as Keras'
TensorBoard callback does with `profile_batch`. The trainer cuts its multi-step graph calls at the window's edges, so
the trace holds exactly those steps (the first step of a run also holds its tracing: start later to see steady state).

`top_ops` reads a trace back through the profile plugin's own converter (what the tab shows as "TensorFlow stats").
"""

from __future__ import annotations

import glob
import json
import os

import tensorflow as tf


class ProfileWindow:
    """Starts and stops the profiler around the configured steps.

    Args:
        config: the `training.profile` config (None: never profiles).
        log_dir: where the trace goes (the run's `logs/train`); None (e.g. a non-chief worker, or
            `logging.tensorboard: false`) never profiles.
        report: prints one line when the trace is written.
    """

    def __init__(self, config, log_dir: str | None, report=print):
        self.configured = config is not None
        self.start = config.start_step if self.configured else 0
        self.end = config.start_step + config.num_steps if self.configured else 0
        self.log_dir = log_dir
        self.report = report
        self.active_from: int | None = None

    def cuts(self, step: int) -> list[int]:
        """The window's edges after `step`: graph calls end there, so the trace starts and stops between steps. On
        every worker alike, tracing or not: under multi_worker the workers' graph calls must line up."""
        return [s for s in (self.start, self.end) if s > step] if self.configured else []

    def before(self, step: int) -> None:
        """Called before the graph call that starts at `step`."""
        if self.log_dir is not None and self.active_from is None and self.start <= step < self.end:
            os.makedirs(self.log_dir, exist_ok=True)
            tf.profiler.experimental.start(self.log_dir)
            self.active_from = step

    def after(self, step: int, last: int) -> None:
        """Called after a graph call, with the step count reached and the run's step count: the trace ends with the
        window or with the last step, before the final evaluation and checkpoint."""
        if self.active_from is not None and step >= min(self.end, last):
            self.stop(step)

    def stop(self, step: int) -> None:
        """Writes the trace (also when training ends or fails inside the window)."""
        if self.active_from is None:
            return
        first, self.active_from = self.active_from, None
        tf.profiler.experimental.stop()
        self.report(
            f"profile of steps {first}–{step - 1} written to {self.log_dir}/plugins/profile "
            "(TensorBoard's Profile tab: pip install tensorboard-plugin-profile)"
        )


def trace_files(log_dir: str) -> list[str]:
    """The profiler traces under a TensorBoard (sub-)run directory, oldest first."""
    return sorted(glob.glob(os.path.join(log_dir, "plugins", "profile", "*", "*.xplane.pb")))


def top_ops(trace: str, count: int = 10) -> list[dict]:
    """The op types that took the most time in a trace, as the profile plugin computes them ("TensorFlow stats"):
    [{"type", "self_ms", "share", "occurrences"}], largest first (idle time left out).

    Needs `tensorboard-plugin-profile` (xprof)."""
    from xprof.convert import raw_to_tool_data

    data, _ = raw_to_tool_data.xspace_to_tool_data([trace], "framework_op_stats", {})
    if data is None:
        raise ValueError(f"the profile plugin could not read {trace}")
    table = json.loads(data)[0]
    columns = [c["id"] for c in table["cols"]]
    by_type: dict[str, list[float]] = {}
    for row in table["rows"]:
        cell = dict(zip(columns, (c.get("v") for c in row["c"])))
        if cell["type"] == "IDLE":
            continue
        entry = by_type.setdefault(cell["type"], [0.0, 0])
        entry[0] += cell["total_self_time"]
        entry[1] += int(cell["occurrences"])
    total = sum(v[0] for v in by_type.values()) or 1.0
    ranked = sorted(by_type.items(), key=lambda item: -item[1][0])[:count]
    return [{"type": name, "self_ms": us / 1e3, "share": us / total, "occurrences": n} for name, (us, n) in ranked]
