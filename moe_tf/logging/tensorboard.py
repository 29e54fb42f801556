"""TensorBoard summaries with tags that line up across runs:

Training (every log interval): `train/loss`, `train/<task>/loss`, `train/<task>/<metric>`, `train/learning_rate`,
`train/weights/<task>`, `train/examples_per_sec`, and per gate `aux/<gate>/<loss>` (each auxiliary loss as added
to the objective), `gates/<gate>/entropy`, `gates/<gate>/expert_<i>` (mean gate weight), and for sparse gates
`gates/<gate>/routed_<i>` (fraction of examples expert i processed) and `gates/<gate>/dropped` (fraction of
assignments dropped by capacity).
Evaluation: `eval/loss` (task losses only), `eval/<task>/loss`, `eval/<task>/<metric>`, `eval/aux/<gate>/<loss>`,
the histogram `gates/<gate>/weights`, the image `gates/heatmap` (labelled gate × expert matrix with values and a
colour bar), the text `gates/table`, and `gates/dead_experts`. The test split is logged with the prefix `test`.
Task conflict (every `logging.gradient_stats_every` steps): `grads/norm/<task>` (norm of the task loss's gradient on
the shared variables) and `grads/cosine/<a>__<b>` (cosine similarity of two tasks' gradients; negative: conflict).
The text `config` holds the resolved YAML, and the HParams plugin every leaf key of it (`TensorBoardLogger.hparams`).
`train/nonfinite_steps` counts the steps the non-finite guard skipped.

After `--resume` from step s, `purge_after(log_dir, s)` first removes what the killed run logged past s, so every
curve is continuous: no step twice, none missing.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata

from moe_tf.config.loader import leaf_values
from moe_tf.logging.gates import gates_png

# Logged at step s after its checkpoint (the task gradients, measured before step s + 1; the test split, after
# training): a run resumed from step s logs them at s again.
RELOGGED_AT_RESUME_STEP = ("grads/", "test/")


class TensorBoardLogger:
    """Writes one event stream to `log_dir`; every method is a no-op when `enabled` is false.

    Args:
        expert_names: labels of the experts (columns of the heatmap).
        heatmap: log the gate heatmap image.
    """

    def __init__(self, log_dir: str, enabled: bool = True, heatmap: bool = True, expert_names=None):
        self.enabled = enabled
        self.heatmap = heatmap
        self.expert_names = list(expert_names or [])
        self.writer = tf.summary.create_file_writer(log_dir) if enabled else None

    def config(self, text: str) -> None:
        if self.enabled:
            with self.writer.as_default():
                tf.summary.text("config", "```\n" + text + "\n```", step=0)
            self.writer.flush()

    def hparams(self, config: dict, run_name: str) -> None:
        """The run's hyper-parameters for TensorBoard's HParams dashboard: every leaf key of the resolved config
        (`model.experts.count`, `tasks[0].weight`, ...; lists and nulls as JSON text). Its metrics are the scalars
        the run logs (e.g. `test/<task>/<metric>` at the last step)."""
        if not self.enabled:
            return
        from tensorboard.plugins.hparams import api as hp

        values = {key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=str)
                  for key, value in leaf_values(config).items()}
        with self.writer.as_default():
            hp.hparams(values, trial_id=run_name)
        self.writer.flush()

    def task_gradients(self, step: int, summary: dict) -> None:
        """`summary`: {"norm": {task: float}, "cosine": {"a__b": float}} (Trainer.fit)."""
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            for task, value in summary["norm"].items():
                tf.summary.scalar(f"grads/norm/{task}", value)
            for pair, value in summary["cosine"].items():
                tf.summary.scalar(f"grads/cosine/{pair}", value)

    def train(self, step: int, summary: dict) -> None:
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            tf.summary.scalar("train/loss", summary["loss"])
            tf.summary.scalar("train/learning_rate", summary["learning_rate"])
            tf.summary.scalar("train/examples_per_sec", summary["examples_per_sec"])
            tf.summary.scalar("train/nonfinite_steps", summary.get("nonfinite_steps", 0))
            for task, weight in summary["weights"].items():
                tf.summary.scalar(f"train/weights/{task}", weight)
            self._tasks("train", summary)
            for gate, g in summary["gates"].items():
                for loss, value in g["aux"].items():
                    tf.summary.scalar(f"aux/{gate}/{loss}", value)
                tf.summary.scalar(f"gates/{gate}/entropy", g["entropy"])
                for i, w in enumerate(g["expert_weights"]):
                    tf.summary.scalar(f"gates/{gate}/expert_{i}", w)
                if "routed" in g:
                    for i, r in enumerate(g["routed"]):
                        tf.summary.scalar(f"gates/{gate}/routed_{i}", r)
                    tf.summary.scalar(f"gates/{gate}/dropped", g["dropped"])

    def eval(self, step: int, summary: dict, prefix: str = "eval", dead_experts: int | None = None) -> None:
        if not self.enabled:
            return
        with self.writer.as_default(step=step):
            tf.summary.scalar(f"{prefix}/loss", summary["loss"])
            self._tasks(prefix, summary)
            gates = summary["gates"]
            for gate, g in gates.items():
                for loss, value in g["aux"].items():
                    tf.summary.scalar(f"{prefix}/aux/{gate}/{loss}", value)
                if prefix == "eval":
                    self._histogram(f"gates/{gate}/weights", g["histogram"], step)
            if dead_experts is not None:
                tf.summary.scalar("gates/dead_experts", dead_experts)
            if gates and self.heatmap and prefix == "eval":
                labels = self._labels(gates)
                png = gates_png(gates, labels, f"mean gate weight per expert, step {step}")
                tf.summary.image("gates/heatmap", tf.io.decode_png(png, channels=3)[None], step=step,
                                 description="rows: gates (tasks); columns: experts; cells: mean gate weight")
                tf.summary.text("gates/table", gate_table(gates, labels))
        self.writer.flush()

    def _labels(self, gates):
        width = len(next(iter(gates.values()))["expert_weights"])
        return self.expert_names if len(self.expert_names) == width else [str(i) for i in range(width)]

    @staticmethod
    def _histogram(tag: str, counts, step: int) -> None:
        """A histogram of gate weights from counts in equal bins over [0, 1]."""
        counts = np.asarray(counts, dtype=np.float64)
        edges = np.linspace(0.0, 1.0, len(counts) + 1)
        buckets = np.stack([edges[:-1], edges[1:], counts], axis=1)
        tf.summary.write(tag, tf.constant(buckets), step=step,
                         metadata=histogram_metadata.create_summary_metadata(tag, "gate weights"))

    def _tasks(self, prefix: str, summary: dict) -> None:
        for task, metrics in summary["tasks"].items():
            for metric, value in metrics.items():
                tf.summary.scalar(f"{prefix}/{task}/{metric}", value)

    def close(self) -> None:
        if self.enabled:
            self.writer.close()


def purge_after(log_dir: str, step: int) -> int:
    """Rewrites the event files in `log_dir` without the events a resumed run will write again: those past `step`
    and those logged after the checkpoint of `step` (RELOGGED_AT_RESUME_STEP) at `step`. A record cut short by a
    kill ends its file.

    Each file is replaced atomically. Returns how many events were removed.
    """
    removed = 0
    for path in sorted(glob.glob(os.path.join(glob.escape(log_dir), "events.out.tfevents.*"))):
        kept, dropped = [], 0
        try:
            for record in tf.data.TFRecordDataset(path):
                event = event_pb2.Event.FromString(record.numpy())
                if _replayed(event, step):
                    dropped += 1
                else:
                    kept.append(record.numpy())
        except tf.errors.DataLossError:  # a truncated last record
            dropped += 1
        if not dropped:
            continue
        tmp = os.path.join(log_dir, ".purge.tmp")
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in kept:
                writer.write(record)
        os.replace(tmp, path)
        removed += dropped
    return removed


def _replayed(event, step: int) -> bool:
    if event.HasField("file_version"):
        return False
    if event.step > step:
        return True
    return event.step == step and any(v.tag.startswith(RELOGGED_AT_RESUME_STEP) for v in event.summary.value)


def gate_table(gates: dict, expert_names) -> str:
    """A markdown table: one row per gate, one column per expert (mean gate weight; routed fraction in
    parentheses for sparse gates)."""
    header = "| gate | " + " | ".join(expert_names) + " |"
    rule = "|---" * (len(expert_names) + 1) + "|"
    rows = []
    for name, g in gates.items():
        cells = [f"{w:.3f}" + (f" ({r:.2f})" if "routed" in g else "")
                 for w, r in zip(g["expert_weights"], g.get("routed", g["expert_weights"]))]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])
