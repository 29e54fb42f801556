"""`moe-tf compare`: one row per run directory — the config keys that differ between the runs, each task's test
metrics, steps and examples/s — sorted by one metric, as a table, CSV or Markdown.

Runs are read from their files only (`config.yaml`, `metrics.json`, and the TensorBoard events for an `eval/...`
metric), so runs of any age and unfinished runs compare; nothing is rebuilt.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import os
from dataclasses import dataclass

import yaml

from moe_tf.config.loader import leaf_values
from moe_tf.config.schema import lower_is_better  # every other metric (accuracy, auc, ...) sorts highest first
from moe_tf.errors import ConfigError, MoeTfError

FORMATS = ("table", "csv", "markdown")
# keys that name where a run went, not how it was trained
IGNORED_KEYS = {"experiment.output_dir"}


@dataclass
class Run:
    name: str
    path: str
    config: dict  # flat: "model.experts.count" -> 4
    metrics: dict | None  # metrics.json, or None while the run is unfinished
    sort_value: float | None = None  # the value of the metric the runs are sorted by


def find_runs(patterns: list[str]) -> list[str]:
    """Run directories (holding config.yaml) named by paths or globs; a directory of runs stands for its runs."""
    found = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) or ([pattern] if os.path.exists(pattern) else [])
        runs = []
        for path in matches:
            if os.path.isfile(os.path.join(path, "config.yaml")):
                runs.append(path)
            elif os.path.isdir(path):
                runs += sorted(
                    os.path.join(path, d)
                    for d in os.listdir(path)
                    if os.path.isfile(os.path.join(path, d, "config.yaml"))
                )
        if not runs:
            raise ConfigError(
                f"compare: {pattern} matches no run directory (a directory holding config.yaml, or a directory of them)"
            )
        found += [os.path.normpath(r) for r in runs if os.path.normpath(r) not in found]
    return found


def differing_keys(runs: list[Run]) -> list[str]:
    """Config keys whose value is not the same in every run (absent counts as a value), in first-seen order."""
    keys = list(dict.fromkeys(k for r in runs for k in r.config))
    missing = object()
    return [
        k
        for k in keys
        if k not in IGNORED_KEYS
        and len({json.dumps(r.config.get(k, missing), sort_keys=True, default=str) for r in runs}) > 1
    ]


def read_run(path: str) -> Run:
    try:
        with open(os.path.join(path, "config.yaml"), encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except (OSError, yaml.YAMLError) as e:
        raise MoeTfError(f"compare: {path}/config.yaml cannot be read: {e}") from None
    metrics = None
    if os.path.exists(os.path.join(path, "metrics.json")):
        try:
            with open(os.path.join(path, "metrics.json"), encoding="utf-8") as f:
                metrics = json.load(f)
        except (OSError, ValueError) as e:
            raise MoeTfError(f"compare: {path}/metrics.json cannot be read: {e}") from None
    return Run(
        os.path.basename(os.path.abspath(path)), path, leaf_values(config if isinstance(config, dict) else {}), metrics
    )


def metrics_of(run: Run) -> dict:
    """{"digit/accuracy": 0.97, ..., "loss": 0.21} from metrics.json (test split)."""
    if not run.metrics:
        return {}
    out = {
        f"{task}/{name}": value
        for task, values in run.metrics.get("tasks", {}).items()
        for name, value in values.items()
    }
    out["loss"] = run.metrics.get("loss")
    return out


def last_scalar(log_dir: str, tag: str) -> float | None:
    """The last value of a scalar tag in a run's TensorBoard events (None if never logged)."""
    from tensorboard.backend.event_processing.event_accumulator import TENSORS, EventAccumulator
    from tensorboard.util import tensor_util

    if not os.path.isdir(log_dir):
        return None
    accumulator = EventAccumulator(log_dir, size_guidance={TENSORS: 0})
    accumulator.Reload()
    if tag not in accumulator.Tags().get("tensors", []):
        return None
    events = accumulator.Tensors(tag)
    return float(tensor_util.make_ndarray(max(events, key=lambda e: e.step).tensor_proto)) if events else None


def metric_value(run: Run, metric: str) -> float | None:
    """`metric`: `TASK/METRIC` or `test/TASK/METRIC` (metrics.json), `loss`, or `eval/TASK/METRIC` / `eval/loss`
    (the last evaluation logged to TensorBoard, tag `TASK/METRIC` of the sub-run `eval`)."""
    if metric.startswith("eval/"):
        return last_scalar(os.path.join(run.path, "logs", "eval"), metric.removeprefix("eval/"))
    return metrics_of(run).get(metric.removeprefix("test/"))


def compare(patterns: list[str], metric: str | None = None, fmt: str = "table") -> str:
    """The comparison of the runs named by `patterns`, sorted by `metric` (best first; runs without it last).

    Raises:
        ConfigError: no run matched, an unknown format, or a metric no run has.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"compare: --format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    runs = [read_run(p) for p in find_runs(patterns)]
    _unique_names(runs)
    columns = list(dict.fromkeys(m for r in runs for m in metrics_of(r) if m != "loss"))
    metric = metric or next((c for c in columns if not lower_is_better(c)), columns[0] if columns else "loss")
    for run in runs:
        run.sort_value = metric_value(run, metric)
    if all(r.sort_value is None for r in runs):
        known = ", ".join(columns + ["loss", "eval/TASK/METRIC"])
        raise ConfigError(f"compare: no run has the metric {metric!r}; known: {known}")
    sign = 1.0 if lower_is_better(metric) else -1.0
    runs.sort(key=lambda r: (r.sort_value is None, sign * r.sort_value if r.sort_value is not None else 0.0))
    keys = differing_keys(runs)
    header = ["run", *keys, *columns, "loss"]
    shown = metric in header or metric.removeprefix("test/") in header  # else (an eval/... metric) a column of its own
    header += [*([] if shown else [metric]), "steps", "examples/s"]
    rows = [_row(run, keys, columns, not shown) for run in runs]
    title = f"{len(runs)} run(s), sorted by {metric} ({'lower' if sign > 0 else 'higher'} is better)"
    return _render(header, rows, fmt, title)


def _unique_names(runs: list[Run]) -> None:
    """Runs are named by their directory; where two share a name, by their path below the common parent."""
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        root = os.path.commonpath([os.path.abspath(r.path) for r in runs])
        for run in runs:
            run.name = os.path.relpath(os.path.abspath(run.path), root)


def _row(run: Run, keys: list[str], columns: list[str], with_sort_value: bool) -> list:
    tests = metrics_of(run)
    metrics = run.metrics or {}
    cells = [run.name if run.metrics else f"{run.name} (unfinished)"]
    cells += [run.config.get(k) for k in keys]
    cells += [tests.get(c) for c in [*columns, "loss"]]
    cells += [run.sort_value] if with_sort_value else []
    cells += [metrics.get("step"), metrics.get("examples_per_sec")]
    return cells


def _cell(value, fmt: str) -> str:
    if value is None:
        return "" if fmt == "csv" else "-"
    if isinstance(value, float):
        if fmt == "csv":
            return repr(value)
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.4f}" if value == 0 or abs(value) >= 1e-3 else f"{value:.3g}"  # 1e-07, not 0.0000
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def _render(header: list[str], rows: list[list], fmt: str, title: str) -> str:
    cells = [[_cell(v, fmt) for v in row] for row in rows]
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(cells)
        return buf.getvalue()
    if fmt == "markdown":

        def line(values):
            return "| " + " | ".join(v.replace("|", "\\|") for v in values) + " |"

        return "\n".join([line(header), line(["---"] * len(header)), *(line(r) for r in cells)]) + "\n"
    widths = [max(len(str(c)) for c in column) for column in zip(header, *cells)]
    lines = [title, "  ".join(h.ljust(w) for h, w in zip(header, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in cells]
    return "\n".join(lines) + "\n"
