"""Checkpoints of model, optimizer (with its step counter) and early-stopping state.

`checkpoints/` keeps the latest `keep` checkpoints; `checkpoints/best/` keeps the best one by the
early-stopping monitor. Under multi-worker every worker saves (the save is collective); only the chief's
files land in the run directory, the others go to a scratch directory that is removed.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import tensorflow as tf

from moe_tf.errors import MoeTfError


def model_variables(model) -> dict:
    """The model's variables keyed by their Keras path (e.g. `moe_tf_model/mixture/experts/kernel_0`).

    Checkpoints hold this flat mapping rather than the layer graph: Keras 3 layers keep sub-layers in
    lists and dicts that TensorFlow's object-graph checkpointing does not follow.
    """
    variables = {v.path: v for v in model.variables}
    if len(variables) != len(model.variables):
        raise ValueError("model variable paths are not unique; give every layer a distinct name")
    return variables


def model_state(model) -> dict:
    """What a checkpoint holds of the model: its variables and, with text inputs, each text feature's vocabulary
    (restoring a checkpoint sets the vocabulary it was trained with)."""
    from moe_tf.models.text import VocabularyState

    state = {"model": model_variables(model)}
    vocabularies = {f: VocabularyState(vs) for f, vs in model.text_vectorizers().items()}
    if vocabularies:
        state["vocabulary"] = vocabularies
    return state


class Checkpointer:
    def __init__(self, run_dir: str, chief: bool, keep: int, model, **trackables):
        self.checkpoint = tf.train.Checkpoint(**model_state(model), **trackables)
        self.chief = chief
        root = os.path.join(run_dir, "checkpoints")
        self._scratch = None if chief else tempfile.mkdtemp(prefix="moe_tf_worker_ckpt_")
        if self._scratch:
            root = self._scratch
        self.latest = tf.train.CheckpointManager(self.checkpoint, root, max_to_keep=keep)
        self.best = tf.train.CheckpointManager(self.checkpoint, os.path.join(root, "best"), max_to_keep=1)

    def save(self, step: int, best: bool = False) -> None:
        if self.latest.latest_checkpoint != os.path.join(self.latest.directory, f"ckpt-{step}"):
            self.latest.save(checkpoint_number=step)
        if best:
            self.best.save(checkpoint_number=step)

    def restore_latest(self) -> int | None:
        """Restores the latest checkpoint, if any; returns its step number."""
        path = self.latest.latest_checkpoint
        if path is None:
            return None
        _restore(self.checkpoint, path)
        return int(path.rsplit("-", 1)[-1])

    def restore_best(self) -> bool:
        path = self.best.latest_checkpoint
        if path is None:
            return False
        _restore(self.checkpoint, path)
        return True

    def close(self) -> None:
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


def find_checkpoint(run_dir: str, prefer_best: bool = True) -> str | None:
    """The checkpoint a finished run is used from: its best one (early stopping) if present and preferred, else its
    latest; None when it has none."""
    root = os.path.join(run_dir, "checkpoints")
    best = tf.train.latest_checkpoint(os.path.join(root, "best")) if prefer_best else None
    return best or tf.train.latest_checkpoint(root)


def restore_for_inference(run_dir: str, model, prefer_best: bool = True) -> str:
    """Loads trained weights into `model` (best checkpoint if present and preferred, else latest).

    Returns the checkpoint path used.
    """
    path = find_checkpoint(run_dir, prefer_best)
    if path is None:
        raise MoeTfError(f"no checkpoint found in {os.path.join(run_dir, 'checkpoints')} (was the run trained?)")
    _restore(tf.train.Checkpoint(**model_state(model)), path)
    return path


def _restore(checkpoint, path: str) -> None:
    """Restores `path`, refusing a checkpoint that lacks any of the model's variables (e.g. one written by another
    version of moe-tf, whose variables are named differently): nothing is restored silently half-way."""
    try:
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:  # a missing variable, or one of another shape
        raise MoeTfError(f"{path} does not match the model built from the run's config (was it written by another "
                         f"version of moe-tf?): {str(e)[:300]}") from None
