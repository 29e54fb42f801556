"""Checkpoints of model, optimizer (with its step counter) and early-stopping state.

`checkpoints/` keeps the latest `keep` checkpoints; `checkpoints/best/` keeps the best one by the
early-stopping monitor. Under multi-worker every worker saves (the save is collective); only the chief's
files land in the run directory, the others go to a scratch directory that is removed (on resume every worker
reads the run directory's checkpoints: give the workers one shared --output-dir).

A checkpoint that cannot be read at `--resume` (truncated, missing a file, unreadable bytes) is moved to
`checkpoints/corrupt/` and the previous one is used, with a warning naming both. A checkpoint is never written
from variables holding a NaN or an Inf.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
import tempfile

import tensorflow as tf

from moe_tf.errors import MoeTfError, error_line
from moe_tf.training.nonfinite import nonfinite_variables


def model_variables(model) -> dict:
    """The model's variables keyed by their Keras path (e.g. `moe_tf_model/mixture/experts/kernel_0`).

    Checkpoints hold this flat mapping rather than the layer graph: Keras 3 layers keep sub-layers in
    lists and dicts that TensorFlow's object-graph checkpointing does not follow.
    """
    variables, seeds = {}, 0
    for v in model.variables:
        path = v.path
        if SEED_STATE.fullmatch(path):
            # Keras names a dropout's seed generator from a process-wide counter: a model built after others (a
            # search's trials, a notebook) would save under other names than a fresh process rebuilds. Numbered in
            # model order, as a fresh process numbers them.
            path = f"seed_generator{f'_{seeds}' if seeds else ''}/seed_generator_state"
            seeds += 1
        variables[path] = v
    if len(variables) != len(model.variables):
        raise ValueError("model variable paths are not unique; give every layer a distinct name")
    return variables


SEED_STATE = re.compile(r"seed_generator(_\d+)?/seed_generator_state")


def model_state(model) -> dict:
    """What a checkpoint holds of the model: its variables and each text or categorical feature's vocabulary
    (restoring a checkpoint sets the vocabulary it was trained with)."""
    from moe_tf.models.text import VocabularyState

    state = {"model": model_variables(model)}
    vocabularies = {f: VocabularyState(vs) for f, vs in model.vocabulary_layers().items()}
    if vocabularies:
        state["vocabulary"] = vocabularies
    return state


class Checkpointer:
    def __init__(self, run_dir: str, chief: bool, keep: int, model, **trackables):
        self.state = {**model_state(model), **trackables}
        self.checkpoint = tf.train.Checkpoint(**self.state)
        self.chief = chief
        self.keep = keep
        self.run_root = os.path.join(run_dir, "checkpoints")
        self._scratch = None if chief else tempfile.mkdtemp(prefix="moe_tf_worker_ckpt_")
        self._managers(self._scratch or self.run_root)

    def _managers(self, root: str) -> None:
        self.latest = tf.train.CheckpointManager(self.checkpoint, root, max_to_keep=self.keep)
        self.best = tf.train.CheckpointManager(self.checkpoint, os.path.join(root, "best"), max_to_keep=1)

    def save(self, step: int, best: bool = False) -> None:
        """Writes the checkpoint of `step` (once) and, if `best`, the best one; refuses non-finite variables."""
        bad = nonfinite_variables(self.state["model"].values())
        if bad:
            raise MoeTfError(
                f"not writing the checkpoint of step {step}: {len(bad)} variable(s) hold a NaN or an "
                f"Inf (e.g. {bad[0]}); the previous checkpoints are kept"
            )
        if self.latest.latest_checkpoint != os.path.join(self.latest.directory, f"ckpt-{step}"):
            self.latest.save(checkpoint_number=step)
        if best:
            self.best.save(checkpoint_number=step)

    def restore_latest(self, warn=print) -> int | None:
        """Restores the newest readable checkpoint of the run, if any; returns its step number.

        An unreadable one is skipped with a warning naming it and the one used instead; the chief moves it to
        `checkpoints/corrupt/`. A checkpoint of another model (variables missing or of other shapes) is an error,
        not a fallback.
        """
        skipped = []
        for path in reversed(list_checkpoints(self.run_root)):
            try:
                _restore(self.checkpoint, path)
            except UnreadableCheckpoint as e:
                skipped.append((path, e.why))
                continue
            for bad, why in skipped:
                warn(f"warning: checkpoint {bad} cannot be read ({why}); resuming from {path} instead")
            self._set_aside([bad for bad, _ in skipped], path)
            return checkpoint_step(path)
        if skipped:
            raise MoeTfError(
                f"no checkpoint in {self.run_root} can be read: "
                + "; ".join(f"{p} ({why})" for p, why in skipped)
                + f". Move {self.run_root} away to start afresh"
            )
        return None

    def _set_aside(self, unreadable: list, good: str) -> None:
        """Chief: moves unreadable checkpoints to `corrupt/` and makes `good` the latest the managers know."""
        if not self.chief or not unreadable:
            return
        corrupt = os.path.join(self.run_root, "corrupt")
        os.makedirs(corrupt, exist_ok=True)
        for path in unreadable:
            for f in glob.glob(glob.escape(path) + ".*"):
                os.replace(f, os.path.join(corrupt, os.path.basename(f)))
        remaining = [p for p in list_checkpoints(self.run_root) if checkpoint_step(p) <= checkpoint_step(good)]
        _write_state(self.run_root, remaining)
        self._managers(self.run_root)

    def restore_best(self) -> bool:
        path = self.best.latest_checkpoint
        if path is None:
            return False
        _restore(self.checkpoint, path)
        return True

    def close(self) -> None:
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)


def checkpoint_step(path: str) -> int:
    return int(path.rsplit("-", 1)[-1])


def list_checkpoints(root: str) -> list[str]:
    """The checkpoints in `root`, oldest first, found by their index files (not the `checkpoint` state file,
    which a kill can leave stale or a disk error unreadable)."""
    found = []
    for index in glob.glob(os.path.join(glob.escape(root), "ckpt-*.index")):
        match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(index))
        if match:
            found.append((int(match.group(1)), index[: -len(".index")]))
    return [path for _, path in sorted(found)]


def _write_state(root: str, paths: list[str]) -> None:
    """Rewrites the `checkpoint` state file to list `paths` (not empty; the last is the latest)."""
    names = [os.path.basename(p) for p in paths]  # relative: the run directory can be moved
    tf.compat.v1.train.update_checkpoint_state(root, names[-1], all_model_checkpoint_paths=names)


def find_checkpoint(run_dir: str, prefer_best: bool = True) -> str | None:
    """The checkpoint a finished run is used from: its best one (early stopping) if present and preferred, else its
    latest; None when it has none."""
    root = os.path.join(run_dir, "checkpoints")
    best = tf.train.latest_checkpoint(os.path.join(root, "best")) if prefer_best else None
    return best or tf.train.latest_checkpoint(root)


def restore_for_inference(run_dir: str, model, prefer_best: bool = True) -> str:
    """Loads trained weights into `model` (best checkpoint if present and preferred, else latest): the moving
    averages of the trainable weights where the run kept them (moe_tf.training.averaging).

    Returns the checkpoint path used.
    """
    path = find_checkpoint(run_dir, prefer_best)
    if path is None:
        raise MoeTfError(f"no checkpoint found in {os.path.join(run_dir, 'checkpoints')} (was the run trained?)")
    state = model_state(model)
    averaged = averaged_paths(path)
    if averaged:  # training.ema_momentum: the averages take the place of the variables they average
        state["average"] = {p: v for p, v in state["model"].items() if p in averaged}
        state["model"] = {p: v for p, v in state["model"].items() if p not in averaged}
    _restore(tf.train.Checkpoint(**state), path)
    return path


VALUE_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
STATE_SUFFIX = "/.ATTRIBUTES/py_state"  # a PythonState's value (a vocabulary, as JSON)


def read_vocabularies(path: str) -> dict[str, list[str]]:
    """{feature: vocabulary} of the text and categorical inputs of the checkpoint at `path`."""
    try:
        reader = tf.train.load_checkpoint(path)
        keys = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise MoeTfError(f"cannot read the checkpoint {path}: {str(e)[:300]}") from None
    out = {}
    for key in keys:
        if key.startswith("vocabulary/") and key.endswith(STATE_SUFFIX):
            value = reader.get_tensor(key)
            feature = checkpoint_key(key[len("vocabulary/") : -len(STATE_SUFFIX)])
            out[feature] = json.loads(value.decode() if isinstance(value, bytes) else value)
    return out


def resume_vocabularies(run_dir: str) -> dict[str, list[str]]:
    """The vocabularies of the newest readable checkpoint of a run (what `--resume` restores; every checkpoint of a
    run holds the same ones), or {} without one."""
    for path in reversed(list_checkpoints(os.path.join(run_dir, "checkpoints"))):
        try:
            return read_vocabularies(path)
        except MoeTfError:
            continue
    return {}


def averaged_paths(path: str) -> set[str]:
    """The variable paths whose moving averages (`training.ema_momentum`) the checkpoint at `path` holds (empty
    when the run kept none, or when the checkpoint cannot be read: restoring it says why)."""
    try:
        names = [name for name, _ in tf.train.list_variables(path)]
    except Exception:  # noqa: BLE001 - a truncated file raises anything from IndexError to DataLossError
        return set()
    return {
        checkpoint_key(name[len("average/") : -len(VALUE_SUFFIX)])
        for name in names
        if name.startswith("average/") and name.endswith(VALUE_SUFFIX)
    }


def checkpoint_key(name: str) -> str:
    """A checkpoint key's local name → the dict key it was saved under (TensorFlow escapes "." as ".." and "/" as
    ".S")."""
    return re.sub(r"\.(.)", lambda m: "." if m.group(1) == "." else "/", name)


class UnreadableCheckpoint(MoeTfError):
    """A checkpoint's files are missing, truncated or corrupt."""

    def __init__(self, path: str, why: str):
        super().__init__(f"checkpoint {path} cannot be read ({why})")
        self.why = why


def _restore(checkpoint, path: str) -> None:
    """Restores `path`, refusing a checkpoint that lacks any of the model's variables (e.g. one written by another
    version of moe-tf, whose variables are named differently): nothing is restored silently half-way."""
    try:
        checkpoint.restore(path).expect_partial().assert_existing_objects_matched()
    except (AssertionError, ValueError) as e:  # a missing variable, or one of another shape
        raise MoeTfError(
            f"{path} does not match the model and optimizer built from the config (were the model, "
            f"training.optimizer or training.ema_momentum changed, or was it written by another version "
            f"of moe-tf?): "
            f"{str(e)[:300]}"
        ) from None
    except Exception as e:  # noqa: BLE001 - a truncated file raises anything from IndexError to DataLossError
        raise UnreadableCheckpoint(path, f"{type(e).__name__}: {error_line(e)[:200]}") from None
