"""The run directory: `config.yaml`, `checkpoints/`, `logs/`, `export/`, `metrics.json`."""

from __future__ import annotations

import os
import shutil
import tempfile
import time

from moe_tf.errors import MoeTfError


def atomic_write(path: str, text: str | bytes) -> None:
    """Writes `text` (or bytes) to `path` so that a kill leaves either the old file or the new one, never half of
    one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_run_config(run_dir: str):
    """The resolved config a run was trained with."""
    from moe_tf.config.loader import load_config

    path = os.path.join(run_dir, "config.yaml")
    if not os.path.isfile(path):
        raise MoeTfError(f"{run_dir} is not a run directory (no config.yaml)")
    return load_config(path)


class Replacement:
    """An existing run that `--overwrite` replaces: moved (one rename) to a hidden sibling directory, deleted when
    the new run has started (its first checkpoint), moved back if the new run fails before. A kill in between
    leaves it whole at `aside`."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        parent, name = os.path.split(os.path.abspath(run_dir))
        self.aside = os.path.join(parent, f".{name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            os.replace(run_dir, self.aside)
        except OSError as e:
            raise MoeTfError(f"--overwrite: cannot move the existing run {run_dir} aside: {e.strerror}") from None
        self.pending = True

    def describe(self) -> str:
        return (
            f"--overwrite: the previous run is kept at {self.aside} until this run writes its first "
            "checkpoint (moved back if this run fails before)"
        )

    def commit(self) -> str:
        """Deletes the previous run (renamed first, so a kill mid-delete leaves a directory named as such)."""
        trash = self.aside + ".deleting"
        os.replace(self.aside, trash)
        shutil.rmtree(trash, ignore_errors=True)
        self.pending = False
        return "--overwrite: this run has started; the previous run is deleted"

    def roll_back(self) -> str | None:
        """Puts the previous run back in place of the new run's partial directory."""
        if not self.pending:
            return None
        shutil.rmtree(self.run_dir, ignore_errors=True)
        os.replace(self.aside, self.run_dir)
        self.pending = False
        return f"--overwrite: this run failed before its first checkpoint; the previous run is back in {self.run_dir}"


def directory_bytes(path: str) -> int:
    """The size of every file below `path` (an export's size on disk)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
