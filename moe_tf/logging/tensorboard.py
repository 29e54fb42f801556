"""TensorBoard summaries in one sub-run per split, so one run's train, eval and test curves overlay in one chart (as
Keras's TensorBoard callback does with `train/` and `validation/`), and tags line up across runs.

`<run>/logs/` holds the resolved YAML (text `config`) and the HParams plugin's session (every leaf key of the config,
`TensorBoardLogger.hparams`); its sub-runs hold the scalars:

- `train` (every log interval): `loss` (the weighted task losses), `<task>/loss`, `<task>/<metric>`,
  `aux/<gate>/<loss>`, `learning_rate`, `examples_per_sec`, `nonfinite_steps`, `weights/<task>`,
  `gates/<gate>/entropy`, `gates/<gate>/expert_<i>` (mean gate weight), for sparse gates `gates/<gate>/routed_<i>` and
  `gates/<gate>/dropped`; every `logging.gradient_stats_every` steps `grads/norm/<task>` and `grads/cosine/<a>__<b>`.
- `eval` (every evaluation): `loss`, `<task>/loss`, `<task>/<metric>`, `aux/<gate>/<loss>`, the histogram
  `gates/<gate>/weights`, the image `gates/heatmap`, the text `gates/table`, `gates/dead_experts`.
- `test` (after training): `loss`, `<task>/loss`, `<task>/<metric>`, `aux/<gate>/<loss>`.

A metric is named `<split>/<tag>` elsewhere (`eval/digit/accuracy` in `training.early_stopping.monitor` and
`moe-tf compare --metric`).

After `--resume` from step s, `purge_after(log_dir, s)` first removes what the killed run logged past s, so every
curve is continuous: no step twice, none missing.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata

from moe_tf.config.loader import leaf_values
from moe_tf.logging.gates import gates_png

# Logged at step s after its checkpoint (the task gradients, measured before step s + 1; the test split, after
# training): a run resumed from step s logs them at s again. Matched against `<sub-run>/<tag>`.
RELOGGED_AT_RESUME_STEP = ("train/grads/", "test/")


class TensorBoardLogger:
    """Writes the run's event files under `log_dir` (one sub-run per split); every method is a no-op when `enabled`
    is false. A split's writer (and directory) is created when that split first logs.

    Args:
        expert_names: labels of the experts (columns of the heatmap).
        heatmap: log the gate heatmap image.
    """

    def __init__(self, log_dir: str, enabled: bool = True, heatmap: bool = True, expert_names=None):
        self.log_dir = log_dir
        self.enabled = enabled
        self.heatmap = heatmap
        self.expert_names = list(expert_names or [])
        self.writers = {}

    def writer(self, split: str | None = None):
        """The writer of the sub-run `split` (None: the run's own directory)."""
        if split not in self.writers:
            self.writers[split] = tf.summary.create_file_writer(
                self.log_dir if split is None else os.path.join(self.log_dir, split)
            )
        return self.writers[split]

    def config(self, text: str) -> None:
        if self.enabled:
            with self.writer().as_default():
                tf.summary.text("config", "```\n" + text + "\n```", step=0)
            self.writer().flush()

    def hparams(self, config: dict, run_name: str) -> None:
        """The run's hyper-parameters for TensorBoard's HParams dashboard: every leaf key of the resolved config
        (`model.experts.count`, `tasks[0].weight`, ...; lists and nulls as JSON text). Its metrics are the scalars
        of the sub-runs (e.g. `digit/accuracy` of `test`, at the last step)."""
        if not self.enabled:
            return
        from tensorboard.plugins.hparams import api as hp

        values = {
            key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=str)
            for key, value in leaf_values(config).items()
        }
        with self.writer().as_default():
            hp.hparams(values, trial_id=run_name)
        self.writer().flush()

    def task_gradients(self, step: int, summary: dict) -> None:
        """`summary`: {"norm": {task: float}, "cosine": {"a__b": float}} (Trainer.fit)."""
        if not self.enabled:
            return
        with self.writer("train").as_default(step=step):
            for task, value in summary["norm"].items():
                tf.summary.scalar(f"grads/norm/{task}", value)
            for pair, value in summary["cosine"].items():
                tf.summary.scalar(f"grads/cosine/{pair}", value)

    def train(self, step: int, summary: dict) -> None:
        if not self.enabled:
            return
        with self.writer("train").as_default(step=step):
            tf.summary.scalar("loss", summary["loss"])
            tf.summary.scalar("learning_rate", summary["learning_rate"])
            tf.summary.scalar("examples_per_sec", summary["examples_per_sec"])
            tf.summary.scalar("nonfinite_steps", summary.get("nonfinite_steps", 0))
            for task, weight in summary["weights"].items():
                tf.summary.scalar(f"weights/{task}", weight)
            self._tasks(summary)
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

    def eval(self, step: int, summary: dict, split: str = "eval", dead_experts: int | None = None) -> None:
        """An evaluation of `split` ("eval" or "test"); the gate figures only for "eval"."""
        if not self.enabled:
            return
        writer = self.writer(split)
        with writer.as_default(step=step):
            tf.summary.scalar("loss", summary["loss"])
            self._tasks(summary)
            gates = summary["gates"]
            for gate, g in gates.items():
                for loss, value in g["aux"].items():
                    tf.summary.scalar(f"aux/{gate}/{loss}", value)
                if split == "eval":
                    self._histogram(f"gates/{gate}/weights", g["histogram"], step)
            if dead_experts is not None:
                tf.summary.scalar("gates/dead_experts", dead_experts)
            if gates and self.heatmap and split == "eval":
                labels = self._labels(gates)
                png = gates_png(gates, labels, f"mean gate weight per expert, step {step}")
                tf.summary.image(
                    "gates/heatmap",
                    tf.io.decode_png(png, channels=3)[None],
                    step=step,
                    description="rows: gates (tasks); columns: experts; cells: mean gate weight",
                )
                tf.summary.text("gates/table", gate_table(gates, labels))
        writer.flush()

    def _labels(self, gates):
        width = len(next(iter(gates.values()))["expert_weights"])
        return self.expert_names if len(self.expert_names) == width else [str(i) for i in range(width)]

    @staticmethod
    def _histogram(tag: str, counts, step: int) -> None:
        """A histogram of gate weights from counts in equal bins over [0, 1]."""
        counts = np.asarray(counts, dtype=np.float64)
        edges = np.linspace(0.0, 1.0, len(counts) + 1)
        buckets = np.stack([edges[:-1], edges[1:], counts], axis=1)
        tf.summary.write(
            tag,
            tf.constant(buckets),
            step=step,
            metadata=histogram_metadata.create_summary_metadata(tag, "gate weights"),
        )

    @staticmethod
    def _tasks(summary: dict) -> None:
        for task, metrics in summary["tasks"].items():
            for metric, value in metrics.items():
                tf.summary.scalar(f"{task}/{metric}", value)

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def event_files(log_dir: str) -> list[tuple[str, str]]:
    """(sub-run, path) of every event file under `log_dir`: "" for the run's own directory, else e.g. "train"."""
    found = []
    for directory, _, names in sorted(os.walk(log_dir)):
        sub = os.path.relpath(directory, log_dir)
        found += [
            ("" if sub == "." else sub, os.path.join(directory, name))
            for name in sorted(names)
            if name.startswith("events.out.tfevents.")
        ]
    return found


def purge_after(log_dir: str, step: int) -> int:
    """Rewrites the event files under `log_dir` without the events a resumed run will write again: those past
    `step` and those logged after the checkpoint of `step` (RELOGGED_AT_RESUME_STEP) at `step`. A record cut short
    by a kill ends its file.

    Each file is replaced atomically. Returns how many events were removed.
    """
    removed = 0
    for sub, path in event_files(log_dir):
        kept, dropped = [], 0
        try:
            for record in tf.data.TFRecordDataset(path):
                event = event_pb2.Event.FromString(record.numpy())
                if _replayed(event, sub, step):
                    dropped += 1
                else:
                    kept.append(record.numpy())
        except tf.errors.DataLossError:  # a truncated last record
            dropped += 1
        if not dropped:
            continue
        tmp = os.path.join(os.path.dirname(path), ".purge.tmp")
        with tf.io.TFRecordWriter(tmp) as writer:
            for record in kept:
                writer.write(record)
        os.replace(tmp, path)
        removed += dropped
    return removed


def _replayed(event, sub: str, step: int) -> bool:
    if event.HasField("file_version"):
        return False
    if event.step > step:
        return True
    return event.step == step and any(
        (f"{sub}/{v.tag}" if sub else v.tag).startswith(RELOGGED_AT_RESUME_STEP) for v in event.summary.value
    )


def gate_table(gates: dict, expert_names) -> str:
    """A markdown table: one row per gate, one column per expert (mean gate weight; routed fraction in
    parentheses for sparse gates)."""
    header = "| gate | " + " | ".join(expert_names) + " |"
    rule = "|---" * (len(expert_names) + 1) + "|"
    rows = []
    for name, g in gates.items():
        cells = [
            f"{w:.3f}" + (f" ({r:.2f})" if "routed" in g else "")
            for w, r in zip(g["expert_weights"], g.get("routed", g["expert_weights"]))
        ]
        rows.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join([header, rule, *rows])
