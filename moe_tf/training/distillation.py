"""Knowledge distillation: a trained run (the teacher) gives soft targets for the tasks it shares with this run.

A shared task's loss becomes (1 - alpha) · its loss on the true labels + alpha · the soft loss against the teacher,
over the same labelled examples with the same per-example weights (so it stays exact under any strategy):
- classification: T² · KL(softmax(teacher / T) ‖ softmax(student / T));
- binary: T² · the Bernoulli KL of the two sigmoids at temperature T;
- regression: the squared difference to the teacher's prediction.
The teacher is frozen and is not part of this run's checkpoints: it is rebuilt from its run directory
(`training.distillation.teacher`) whenever this run starts or resumes.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from moe_tf.errors import MoeTfError
from moe_tf.models import count_params
from moe_tf.run_dir import directory_bytes
from moe_tf.training.objectives import labelled


class Distillation:
    """Args:
    teacher: the teacher's MultiTaskModel, restored and frozen.
    teacher_data: the teacher's TaskData (its tasks and input features).
    tasks: this run's TaskInfo list; features: its input FeatureSpecs.
    config: `training.distillation`.
    """

    def __init__(self, teacher, teacher_data, tasks, features, config):
        self.model = teacher  # frozen: run with training=False, its outputs behind stop_gradient, not optimised
        self.temperature = float(config.temperature)
        self.alpha = float(config.alpha)
        self.run_dir = config.teacher
        looked_up = [f for f, spec in teacher_data.features.items() if spec.modality in ("text", "categorical")]
        if (
            looked_up
        ):  # the student's pipeline feeds the ids of its own vocabulary, not the raw values the teacher reads
            raise MoeTfError(
                f"--distill-from {config.teacher}: the teacher reads text or categorical input(s) {looked_up}; "
                "distilling such a model is not supported yet (each model maps values to ids with its own vocabulary)"
            )
        for f, spec in teacher_data.features.items():
            mine = features.get(f)
            if mine is None or mine.dtype != spec.dtype or tuple(mine.shape) != tuple(spec.shape):
                have = "not an input of this run" if mine is None else f"{mine.dtype}{list(mine.shape)} here"
                raise MoeTfError(
                    f"--distill-from {self.run_dir}: the teacher reads input {f!r} as "
                    f"{spec.dtype}{list(spec.shape)}, {have}"
                )
        self.features = sorted(teacher_data.features)
        theirs = {t.name: t for t in teacher_data.tasks}
        self.tasks = [
            t
            for t in tasks
            if t.name in theirs and theirs[t.name].kind == t.kind and theirs[t.name].output_units == t.output_units
        ]
        self.skipped = [t.name for t in tasks if t not in self.tasks]
        if not self.tasks:
            raise MoeTfError(
                f"--distill-from {self.run_dir}: the teacher has no task of this run with the same name, "
                f"type and classes (its tasks: {sorted(theirs)})"
            )

    def describe(self) -> str:
        skipped = f"; on labels only: {', '.join(self.skipped)}" if self.skipped else ""
        return (
            f"distillation from {self.run_dir}: tasks {', '.join(t.name for t in self.tasks)} at temperature "
            f"{self.temperature:g}, alpha {self.alpha:g}{skipped}"
        )

    def mix(self, inputs, outputs, labels, loss_weights, task_losses: dict) -> dict:
        """The shared tasks' losses mixed with their soft losses (one replica's share, as `task_losses`)."""
        teacher = self.model({f: inputs[f] for f in self.features}, training=False)["outputs"]
        mixed = dict(task_losses)
        for task in self.tasks:
            soft = soft_loss(
                task.kind,
                tf.cast(outputs["outputs"][task.name], tf.float32),
                tf.stop_gradient(tf.cast(teacher[task.name], tf.float32)),
                self.temperature,
            )
            weight = tf.cast(labelled(task, labels[task.name]), tf.float32) * loss_weights[task.name]
            hard = task_losses[task.name]
            mixed[task.name] = (1.0 - self.alpha) * hard + self.alpha * tf.cast(
                tf.reduce_sum(soft * weight), hard.dtype
            )
        return mixed


def soft_loss(kind: str, student, teacher, t: float):
    """Per-example soft loss [batch] of a task of `kind` from the two models' logits at temperature `t`."""
    if kind == "classification":
        p = tf.nn.softmax(teacher / t)
        kl = tf.reduce_sum(p * (tf.nn.log_softmax(teacher / t) - tf.nn.log_softmax(student / t)), axis=-1)
        return t * t * kl
    if kind == "binary":
        p = tf.sigmoid(teacher[:, 0] / t)
        kl = tf.nn.sigmoid_cross_entropy_with_logits(
            labels=p, logits=student[:, 0] / t
        ) - tf.nn.sigmoid_cross_entropy_with_logits(labels=p, logits=teacher[:, 0] / t)
        return t * t * kl
    return tf.square(student[:, 0] - teacher[:, 0])


def distillation_report(distillation, student, metrics: dict, run_dir: str) -> dict:
    """Student against teacher: trainable parameters, export sizes (when both exist) and each shared task's test
    metrics (the teacher's from its metrics.json, i.e. on its own test split)."""
    teacher_metrics = {}
    path = os.path.join(distillation.run_dir, "metrics.json")
    if os.path.exists(path):
        with open(path) as f:
            teacher_metrics = json.load(f).get("tasks", {})
    exports = [os.path.join(d, "export") for d in (distillation.run_dir, run_dir)]
    sizes = [directory_bytes(e) if os.path.isdir(e) else None for e in exports]
    return {
        "teacher": distillation.run_dir,
        "temperature": distillation.temperature,
        "alpha": distillation.alpha,
        "params": {"teacher": count_params(distillation.model), "student": count_params(student)},
        "export_bytes": {"teacher": sizes[0], "student": sizes[1]},
        "tasks": {
            t.name: {
                m: {"teacher": teacher_metrics.get(t.name, {}).get(m), "student": v}
                for m, v in metrics["tasks"][t.name].items()
            }
            for t in distillation.tasks
        },
    }


def report_lines(report: dict) -> list[str]:
    p = report["params"]
    lines = [
        f"student vs teacher: {p['student']:,} vs {p['teacher']:,} trainable parameters "
        f"({p['teacher'] / max(p['student'], 1):.1f}x fewer)"
    ]
    sizes = report["export_bytes"]
    if sizes["teacher"] and sizes["student"]:
        lines[0] += f"; export {sizes['student'] / 1024:,.0f} vs {sizes['teacher'] / 1024:,.0f} KiB"
    for task, values in report["tasks"].items():
        cells = [
            f"{m} {v['student']:.4f}" + (f" (teacher {v['teacher']:.4f})" if v["teacher"] is not None else "")
            for m, v in values.items()
        ]
        lines.append(f"  {task}: " + ", ".join(cells))
    return lines
