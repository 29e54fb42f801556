"""What `Trainer.fit` calls at its log, eval and checkpoint steps (`TrainerHooks`, overridden by a run's
moe_tf.run_hooks.RunHooks), and the exception that ends it on a stop request."""

from __future__ import annotations


class TrainerHooks:
    """What `Trainer.fit` calls at log, eval and checkpoint steps; every method is a no-op here (a run's hooks
    override them: progress output, TensorBoard, early stopping, checkpoints)."""

    def on_epoch_start(self, epoch: int, num_epochs: int, steps_per_epoch: int, offset: int) -> None:
        pass

    def on_train_log(self, step: int, summary: dict) -> None:
        pass

    def on_eval(self, step: int, summary: dict) -> bool:
        """Returns true to stop training."""
        return False

    def on_checkpoint(self, step: int) -> None:
        pass

    def on_task_gradients(self, step: int, summary: dict) -> None:
        """The tasks' gradient norms and pairwise cosines on the shared variables, measured before `step + 1`."""

    def on_nonfinite(self, step: int, report: dict) -> None:
        """Non-finite steps were skipped since the last log (`NonfiniteGuard.report`)."""

    def on_step_ops(self, op_types: set[str]) -> None:
        """`training.deterministic`: the op types of the traced training step, before its first run."""

    def on_stop(self, step: int, reason: str) -> None:
        """Training stops early at `step` (a signal's name): a checkpoint is due before the run ends."""

    def last_checkpoint(self) -> str | None:
        """The newest checkpoint written (named when the non-finite guard stops the run)."""
        return None


class Stopped(Exception):
    """`Trainer.fit` ended early on a stop request (SIGINT/SIGTERM) after writing a checkpoint."""

    def __init__(self, step: int, reason: str):
        super().__init__(reason)
        self.step = step
        self.reason = reason
