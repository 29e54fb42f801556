"""What a training run does at the loop's log, eval and checkpoint steps: progress output, TensorBoard, the gate
figure and dead-expert warnings, early stopping and checkpoints (`RunHooks`, wired in moe_tf.components)."""

from __future__ import annotations

import os

import tensorflow as tf

from moe_tf.logging.gates import DeadExperts, gates_png
from moe_tf.run_dir import atomic_write
from moe_tf.training import determinism
from moe_tf.training.hooks import TrainerHooks


class RunHooks(TrainerHooks):
    """Connects the loop to progress output, TensorBoard, gate telemetry, early stopping and checkpoints."""

    def __init__(
        self, progress, tensorboard, early_stopping, checkpointer, gate_report, replacement=None, observer=None
    ):
        self.progress = progress
        self.tensorboard = tensorboard
        self.early_stopping = early_stopping
        self.checkpointer = checkpointer
        self.gate_report = gate_report
        self.replacement = replacement
        self.observer = observer
        self._improved = False
        self.last_eval = self.best_eval = None  # (step, summary)

    def on_epoch_start(self, epoch, num_epochs, steps_per_epoch, offset):
        self.progress.epoch_start(epoch, num_epochs, steps_per_epoch, offset)

    def on_train_log(self, step, summary):
        self.progress.train(step, summary)
        self.tensorboard.train(step, summary)

    def on_eval(self, step, summary) -> bool:
        self.progress.eval(step, summary)
        self.tensorboard.eval(step, summary, dead_experts=self.gate_report.update(step, summary))
        self._improved, stop = self.early_stopping.update(summary)
        self.last_eval = (step, summary)
        if self._improved:
            self.best_eval = self.last_eval
        if stop:
            self.progress.print(
                f"early stopping at step {step}: {self.early_stopping.monitor} has not improved "
                f"for {self.early_stopping.config.patience} evaluations "
                f"(best {self.early_stopping.best_value:.4f})"
            )
        if self.observer is not None and self.observer(step, summary):
            return True
        return stop

    def on_checkpoint(self, step):
        self.checkpointer.save(step, best=self._improved)
        self._improved = False
        if self.replacement is not None and self.replacement.pending:
            self.progress.print(self.replacement.commit())  # the new run has started: the old one goes

    def on_task_gradients(self, step, summary):
        self.tensorboard.task_gradients(step, summary)

    def on_nonfinite(self, step, report):
        lr = "" if report["lr_scale"] is None else f"; learning rate factor now {report['lr_scale']:.3g}"
        self.progress.print(
            f"warning: {report['count']} non-finite step(s) skipped by step {step} (first at step "
            f"{report['step']}: {report['what']}); {report['total']} in this run{lr}"
        )

    def on_step_ops(self, op_types):
        self.progress.print(determinism.describe(op_types, len(tf.config.list_logical_devices("GPU"))))

    def on_stop(self, step, reason):
        self.on_checkpoint(step)

    def last_checkpoint(self):
        return self.checkpointer.latest.latest_checkpoint


class GateReport:
    """Each evaluation: `gates.png` in the run directory (chief only) and the dead-expert check, warned once per
    expert. Does nothing for architectures without gates."""

    def __init__(self, run_dir, model, config, progress, chief):
        self.path = os.path.join(run_dir, "gates.png")
        names = model.mixture.expert_names()
        self.columns = next(iter(names.values()), [])
        self.columns = [c.split("_", 1)[1] if c.startswith("level") else c for c in self.columns]
        self.dead = DeadExperts(names, config.logging.dead_expert_threshold, config.logging.dead_expert_patience)
        self.progress = progress
        self.chief = chief

    def update(self, step, summary) -> int | None:
        """Writes the figure and returns how many experts are dead (None without gates)."""
        if not summary["gates"]:
            return None
        self.write(summary, f"mean gate weight per expert (eval, step {step})")
        count, new = self.dead.update(summary["gates"])
        for name in new:
            self.progress.print(
                f"warning: expert {name} is dead: its load stayed below "
                f"{self.dead.threshold} under every gate for {self.dead.patience} evaluations"
            )
        return count

    def write(self, summary, title) -> None:
        if self.chief and summary["gates"]:
            atomic_write(self.path, gates_png(summary["gates"], self.columns, title))
