"""The run directory: `config.yaml`, `checkpoints/`, `logs/`, `export/`, `metrics.json`."""

from __future__ import annotations

import os
import tempfile

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
