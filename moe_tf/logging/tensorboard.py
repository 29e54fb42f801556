"""TensorBoard summaries with tags that line up across runs:

`train/loss`, `train/<task>/loss`, `train/<task>/<metric>`, `train/learning_rate`, `train/weights/<task>`,
`train/examples_per_sec`, `eval/loss`, `eval/<task>/loss`, `eval/<task>/<metric>`, `gates/<task>/entropy`,
`gates/<task>/expert_<i>` (mean gate weight), the image `gates/heatmap` (rows: tasks, columns: experts),
the text `gates/table` and the text `config` (the resolved YAML).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Anchor colours of the viridis colour map (dark blue = 0 … yellow = 1).
_VIRIDIS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)


def heatmap_image(matrix: np.ndarray, cell: int = 24) -> np.ndarray:
    """[rows, cols] values in [0, 1] → uint8 image [1, rows·cell, cols·cell, 3] (viridis, each value one square)."""
    m = np.clip(np.asarray(matrix, dtype=np.float64), 0.0, 1.0)
    pos = m * (len(_VIRIDIS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_VIRIDIS) - 2)
    frac = (pos - lo)[..., None]
    rgb = _VIRIDIS[lo] * (1 - frac) + _VIRIDIS[lo + 1] * frac  # [rows, cols, 3]
    img = np.repeat(np.repeat(rgb, cell, axis=0), cell, axis=1)
    return img.round().astype(np.uint8)[None]


def gate_matrix(gates: dict) -> tuple[list[str], np.ndarray]:
    names = list(gates)
    return names, np.array([gates[n]["expert_weights"] for n in names])


class TensorBoardLogger:
    """Writes one event stream to `log_dir`; every method is a no-op when `enabled` is false."""

    def __init__(self, log_dir: str, enabled: bool = True, heatmap: bool = True):
        self.enabled = enabled
        self.heatmap = heatmap
        self.writer = tf.summary.create_file_writer(log_dir) if enabled else None

    def config(self, text: str) -> None:
        if self.enabled:
            with self.writer.as_default():
                tf.summary.text("config", "```\n" + text + "\n```", step=0)
            self.writer.flush()

    def train(self, step: int, summary: dict) -> None:
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            tf.summary.scalar("train/loss", summary["loss"])
            tf.summary.scalar("train/learning_rate", summary["learning_rate"])
            tf.summary.scalar("train/examples_per_sec", summary["examples_per_sec"])
            for task, weight in summary["weights"].items():
                tf.summary.scalar(f"train/weights/{task}", weight)
            self._tasks("train", summary)
            for task, g in summary["gates"].items():
                tf.summary.scalar(f"gates/{task}/entropy", g["entropy"])
                for i, w in enumerate(g["expert_weights"]):
                    tf.summary.scalar(f"gates/{task}/expert_{i}", w)

    def eval(self, step: int, summary: dict, prefix: str = "eval") -> None:
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            tf.summary.scalar(f"{prefix}/loss", summary["loss"])
            self._tasks(prefix, summary)
            if summary["gates"] and self.heatmap:
                names, matrix = gate_matrix(summary["gates"])
                tf.summary.image("gates/heatmap", heatmap_image(matrix), step=step,
                                 description="rows: " + ", ".join(names) + "; columns: experts 0..E-1")
                header = "| task | " + " | ".join(f"expert {i}" for i in range(matrix.shape[1])) + " |"
                rule = "|---" * (matrix.shape[1] + 1) + "|"
                rows = [f"| {n} | " + " | ".join(f"{w:.3f}" for w in row) + " |" for n, row in zip(names, matrix)]
                tf.summary.text("gates/table", "\n".join([header, rule, *rows]))
        self.writer.flush()

    def _tasks(self, prefix: str, summary: dict) -> None:
        for task, metrics in summary["tasks"].items():
            for metric, value in metrics.items():
                tf.summary.scalar(f"{prefix}/{task}/{metric}", value)

    def close(self) -> None:
        if self.enabled:
            self.writer.close()
