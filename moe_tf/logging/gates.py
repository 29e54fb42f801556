"""Gate telemetry people can read: the labelled gate × expert heatmap (TensorBoard and `gates.png`), and the
dead-expert monitor."""

from __future__ import annotations

import gc
import io

import numpy as np


def expert_load(gate: dict) -> list[float]:
    """An expert's load under one gate: the fraction of examples it processed (sparse gates) or its mean gate
    weight (dense gates)."""
    return gate.get("routed", gate["expert_weights"])


def heatmap_png(matrix, row_labels, col_labels, title: str, value_label: str) -> bytes:
    """A PNG of `heatmap_figure`.

    A matplotlib figure is a web of reference cycles holding its ~2 MiB Agg pixel buffer. In a training process,
    where TensorFlow keeps ~400,000 long-lived objects, Python's full collections are rare, so each evaluation's
    figure stayed in memory (the soak's RSS rose ~1.8 MiB per 1,000 steps). Collecting the young generations right
    after the figure is dropped frees it (+4 KiB per figure instead of +355 KiB, 3 ms; see benchmarks/soak.py).
    """
    fig = heatmap_figure(matrix, row_labels, col_labels, title, value_label)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    del fig
    gc.collect(1)
    return buf.getvalue()


def heatmap_figure(matrix, row_labels, col_labels, title: str, value_label: str):
    """A matplotlib Figure of `matrix` [rows, cols]: labelled axes, the value in every cell (up to 400 cells) and a
    colour bar."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = np.asarray(matrix, dtype=np.float64)
    rows, cols = m.shape
    fig = Figure(figsize=(max(4.0, 0.75 * cols + 2.5), max(2.2, 0.5 * rows + 1.6)), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    top = max(1.0, float(m.max()) if m.size else 1.0)
    image = ax.imshow(m, cmap="viridis", vmin=0.0, vmax=top, aspect="auto")
    ax.set_xticks(range(cols), labels=col_labels, rotation=45 if cols > 6 else 0, ha="right" if cols > 6 else "center")
    ax.set_yticks(range(rows), labels=row_labels)
    ax.set_xlabel("expert")
    ax.set_ylabel("gate")
    ax.set_title(title)
    if rows * cols <= 400:
        for i in range(rows):
            for j in range(cols):
                ax.text(
                    j,
                    i,
                    f"{m[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="black" if m[i, j] > 0.6 * top else "white",
                )
    fig.colorbar(image, ax=ax, label=value_label)
    fig.tight_layout()
    return fig


def gates_png(gates: dict, expert_names: list[str], title: str) -> bytes:
    """The heatmap of a summary's gates: mean gate weight of each gate (row) per expert (column)."""
    names = list(gates)
    matrix = np.array([gates[n]["expert_weights"] for n in names])
    return heatmap_png(matrix, names, expert_names, title, "mean gate weight")


class DeadExperts:
    """Names experts whose load stays below `threshold` under every gate that can choose them, for `patience`
    evaluations in a row.

    Args:
        expert_names: {gate: labels of the experts in its routing weights} (lower PLE levels' labels carry their
            level, so an expert is one label).
        threshold: load below which an expert counts as unused (fraction of examples, or mean gate weight).
        patience: evaluations in a row before it is reported.
    """

    def __init__(self, expert_names: dict, threshold: float, patience: int):
        self.expert_names = {g: list(names) for g, names in expert_names.items()}
        self.labels = sorted({n for names in self.expert_names.values() for n in names})
        self.threshold = threshold
        self.patience = patience
        self.low = {n: 0 for n in self.labels}
        self.reported: set[str] = set()

    def update(self, gates: dict) -> tuple[int, list[str]]:
        """Returns (how many experts are dead now, those that just became dead)."""
        if not gates:
            return 0, []
        loads = {n: 0.0 for n in self.labels}
        for g, summary in gates.items():
            for n, load in zip(self.expert_names[g], expert_load(summary)):
                loads[n] = max(loads[n], float(load))  # a gate that cannot choose an expert reports 0 for it
        for n in self.labels:
            self.low[n] = self.low[n] + 1 if loads[n] < self.threshold else 0
        dead = [n for n in self.labels if self.low[n] >= self.patience]
        new = [n for n in dead if n not in self.reported]
        self.reported = set(dead)
        return len(dead), new
