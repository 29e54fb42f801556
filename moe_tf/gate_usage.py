"""`moe-tf gates RUN`: which experts each task and each true class uses, on a split of a finished run.

For every task, the mean weight of the gate the task reads, per expert, over the examples of each true class
(every labelled example for regression tasks). Written as `gates_<split>.csv` and `gates_<split>.png` in the run
directory; `usage_table` is the short terminal view.
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np
import tensorflow as tf

from moe_tf.components import restore_components
from moe_tf.errors import MoeTfError
from moe_tf.logging.gates import heatmap_png
from moe_tf.run_dir import atomic_write


def gate_usage(run_dir: str, split: str = "test", checkpoint: str = "best") -> dict:
    """Returns {"experts": [labels], "rows": [{"task", "class", "n", "weights": [per expert]}], "csv", "png"}
    (the paths written)."""
    parts, _ = restore_components(run_dir, checkpoint)
    model, data = parts.model, parts.data
    task_gates = model.task_gates()
    if not task_gates:
        raise MoeTfError(f"{run_dir}: the {parts.config.model.architecture.type} architecture has no gates")
    experts = model.mixture.expert_names()[next(iter(task_gates.values()))]

    @tf.function(reduce_retracing=True, autograph=False)
    def weights_of(inputs):
        routes = model(inputs, training=False)["gates"]
        return {t: routes[g]["weights"] for t, g in task_gates.items()}

    sums = {t.name: np.zeros((max(t.num_classes, 1), len(experts))) for t in data.tasks}
    counts = {t.name: np.zeros(max(t.num_classes, 1)) for t in data.tasks}
    for inputs, labels, _ in data.eval_dataset(split, parts.config.training.batch_size):
        weights = weights_of(inputs)
        for t in data.tasks:
            y, w = labels[t.name].numpy(), weights[t.name].numpy()
            if t.kind == "regression":
                keep, cls = ~np.isnan(y), np.zeros(len(y), dtype=int)
            else:
                keep, cls = y >= 0, y.astype(int)
            np.add.at(sums[t.name], cls[keep], w[keep])
            np.add.at(counts[t.name], cls[keep], 1)
    rows = []
    for t in data.tasks:
        names = ["all"] if t.kind == "regression" else t.class_names
        for c, name in enumerate(names):
            if counts[t.name][c]:
                rows.append(
                    {
                        "task": t.name,
                        "class": name,
                        "n": int(counts[t.name][c]),
                        "weights": (sums[t.name][c] / counts[t.name][c]).tolist(),
                    }
                )
    csv_path = os.path.join(run_dir, f"gates_{split}.csv")
    png_path = os.path.join(run_dir, f"gates_{split}.png")
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["task", "class", "examples", *experts])
    for r in rows:
        writer.writerow([r["task"], r["class"], r["n"], *(f"{w:.6f}" for w in r["weights"])])
    atomic_write(csv_path, buf.getvalue())
    atomic_write(
        png_path,
        heatmap_png(
            np.array([r["weights"] for r in rows]),
            [f"{r['task']}: {r['class']}" for r in rows],
            experts,
            f"mean gate weight per task and true class ({split} split)",
            "mean gate weight",
        ),
    )
    return {"experts": experts, "rows": rows, "csv": csv_path, "png": png_path}


def usage_table(usage: dict, top: int = 3) -> str:
    """One line per task and class: the experts with the largest mean gate weight."""
    width = max(len(f"{r['task']}: {r['class']}") for r in usage["rows"])
    lines = [f"{'task: class':<{width}}  {'n':>6}  top experts (mean gate weight)"]
    for r in usage["rows"]:
        order = np.argsort(r["weights"])[::-1][:top]
        best = ", ".join(f"{usage['experts'][i]} {r['weights'][i]:.2f}" for i in order)
        lines.append(f"{r['task'] + ': ' + r['class']:<{width}}  {r['n']:>6}  {best}")
    return "\n".join(lines)
