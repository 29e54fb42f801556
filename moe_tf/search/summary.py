"""The end of a search: a table of its trials (best first) and the best trial's config as a YAML ready to train
(for several objectives, one per trial of the Pareto front)."""

from __future__ import annotations

import copy
import os

from moe_tf.config.loader import set_value, to_yaml, validate_config
from moe_tf.run_dir import atomic_write
from moe_tf.search.space import Space


def best_trials(study) -> list:
    """The best trial (one objective) or the Pareto front (several); [] before any trial completes."""
    try:
        return list(study.best_trials) if len(study.directions) > 1 else [study.best_trial]
    except ValueError:  # no completed trial
        return []


def summary_table(study, space: Space) -> str:
    """One row per trial: completed ones best first, then pruned (by their last reported value), then failed;
    `*` marks the best trial (or the Pareto front)."""
    best = {t.number for t in best_trials(study)}
    signs = [-1.0 if d == "maximize" else 1.0 for _, d in space.objectives]

    def order(t):
        state_rank = {"COMPLETE": 0, "PRUNED": 1, "RUNNING": 2, "WAITING": 3}.get(t.state.name, 4)
        values = t.values or ([t.intermediate_values[max(t.intermediate_values)]] if t.intermediate_values else [])
        key = sum(s * v for s, v in zip(signs, values)) if values else float("inf")
        return (t.number not in best, state_rank, key, t.number)

    header = ["trial", "state", *[m for m, _ in space.objectives], *space.params, "steps", "seconds"]
    rows = []
    for t in sorted(study.trials, key=order):
        values = t.values or [None] * len(space.objectives)
        if t.state.name == "PRUNED" and t.intermediate_values:
            values = [t.intermediate_values[max(t.intermediate_values)]]
        rows.append(
            [
                f"{'*' if t.number in best else ' '}{t.number}",
                t.state.name.lower(),
                *[_cell(v) for v in values],
                *[_cell(t.params.get(k)) for k in space.params],
                _cell(t.user_attrs.get("step")),
                _cell(t.user_attrs.get("seconds"), 1),
            ]
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    mark = "* the Pareto front" if len(space.objectives) > 1 else "* the best trial"
    return "\n".join(lines + [f"({mark}; pruned trials show their last reported value)"])


def write_best(study, space: Space, study_dir: str, base: dict, table: str) -> dict:
    """Writes `summary.txt` and `best.yaml` (or `pareto/trial-NNNN.yaml` per Pareto trial): the base config with
    the trial's parameters, resolved. Returns {what: path}."""
    files = {"summary": os.path.join(study_dir, "summary.txt")}
    atomic_write(files["summary"], table + "\n")
    best = best_trials(study)
    for t in best:
        data = copy.deepcopy(base)
        for key, value in t.params.items():
            set_value(data, key, value)
        values = ", ".join(f"{m} {v:.4f}" for (m, _), v in zip(space.objectives, t.values))
        if len(best) == 1 and len(space.objectives) == 1:
            path = files["best config"] = os.path.join(study_dir, "best.yaml")
        else:
            os.makedirs(os.path.join(study_dir, "pareto"), exist_ok=True)
            path = files[f"Pareto trial {t.number}"] = os.path.join(study_dir, "pareto", f"trial-{t.number:04d}.yaml")
        where = os.path.normpath(study_dir)
        run_dir = os.path.join(os.path.dirname(where), f"{os.path.basename(where)}-best")
        header = (
            f"# moe-tf train --config {path} --output-dir {run_dir}\n"
            f"# search trial {t.number} of {study_dir}: {values}\n"
        )
        atomic_write(path, header + to_yaml(validate_config(data)))
    return files


def _cell(value, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}" if digits < 4 else f"{value:.4g}"
    return str(value)
