"""`train --init-from RUN`: start a new run from a trained run's variables, matched by name.

Variables are keyed by their Keras path (`moe_tf_model/mixture/level_0/gate_digit/logits/kernel`), so a shared part
(stems, trunk, experts) and every task that already existed (its gate, tower and head are named after it) find
their trained values; a new task's variables are not in the old run and start fresh. A variable whose shape changed
(e.g. more experts) is skipped with both shapes named. Text vocabularies come from the old run too, so a restored
embedding keeps meaning the same tokens (a categorical input's embedding table is sized by its vocabulary, so the
new model is built with the old run's vocabularies: see `vocabularies_of`).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from moe_tf.errors import MoeTfError
from moe_tf.training.checkpoints import (
    VALUE_SUFFIX,
    checkpoint_key,
    find_checkpoint,
    model_variables,
    read_vocabularies,
)


def checkpoint_of(run_dir: str) -> str:
    """The checkpoint a run is continued from: its best one if early stopping kept one, else its latest."""
    if not os.path.isdir(run_dir):
        raise MoeTfError(f"--init-from {run_dir}: no such run directory")
    path = find_checkpoint(run_dir)
    if path is None:
        raise MoeTfError(
            f"--init-from {run_dir}: no checkpoint in {os.path.join(run_dir, 'checkpoints')} (was the run trained?)"
        )
    return path


def read_checkpoint(path: str) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """({variable path: value}, {text or categorical feature: vocabulary}) of a moe-tf checkpoint; a trainable
    variable's value is its moving average where the run kept one (`training.ema_momentum`), as the run evaluated
    and exported it."""
    try:
        reader = tf.train.load_checkpoint(path)
        keys = reader.get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:
        raise MoeTfError(f"cannot read the checkpoint {path}: {str(e)[:300]}") from None
    values, averages = {}, {}
    for key in keys:
        if key.startswith("model/") and key.endswith(VALUE_SUFFIX):
            values[checkpoint_key(key[len("model/") : -len(VALUE_SUFFIX)])] = reader.get_tensor(key)
        elif key.startswith("average/") and key.endswith(VALUE_SUFFIX):
            averages[checkpoint_key(key[len("average/") : -len(VALUE_SUFFIX)])] = reader.get_tensor(key)
    if not values:
        raise MoeTfError(f"{path} holds no model variables; is it a moe-tf checkpoint?")
    return {**values, **averages}, read_vocabularies(path)  # a run's moving averages stand for its trainable weights


def vocabularies_of(run_dir: str) -> dict[str, list[str]]:
    """{feature: vocabulary} of the checkpoint `--init-from run_dir` starts from."""
    return read_vocabularies(checkpoint_of(run_dir))  # not the variables: init_from reads those afterwards


def init_from(run_dir: str, model) -> dict:
    """Assigns the variables of `run_dir`'s checkpoint to `model`'s variables of the same path and shape, and its
    text vocabularies to the model's vectorizers.

    Returns the report: {"checkpoint", "restored": [path], "new": [path], "skipped": [{"variable", "reason"}],
    "unused": [path] (in the old run, not in this model), "vocabularies": [feature]}.
    """
    path = checkpoint_of(run_dir)
    old, vocabularies = read_checkpoint(path)
    report = {"checkpoint": path, "restored": [], "new": [], "skipped": [], "unused": [], "vocabularies": []}
    current = model_variables(model)
    for name, variable in current.items():
        if name not in old:
            report["new"].append(name)
            continue
        value = old[name]
        if tuple(value.shape) != tuple(variable.shape):
            report["skipped"].append(
                {"variable": name, "reason": f"shape {list(value.shape)} in the old run, {list(variable.shape)} here"}
            )
            continue
        variable.assign(value.astype(variable.dtype))
        report["restored"].append(name)
    report["unused"] = sorted(set(old) - set(current))
    for feature, vectorizers in model.vocabulary_layers().items():
        if feature in vocabularies:
            for v in vectorizers:
                v.set_vocabulary(vocabularies[feature])
            report["vocabularies"].append(feature)
    return report


def describe(report: dict) -> list[str]:
    """The report as log lines: counts by part, then every new and skipped variable."""

    def parts(names):
        counts = {}
        for n in names:
            layers = n.split("/")[1:-1]  # without the model's name and the variable's
            nested = layers and (layers[0] == "mixture" or layers[0].startswith("backbone"))
            part = "/".join(layers[:2]) if nested else (layers[0] if layers else n)
            counts[part] = counts.get(part, 0) + 1
        return ", ".join(f"{p} ({c})" for p, c in counts.items()) or "none"

    lines = [
        f"init from {report['checkpoint']}: restored {len(report['restored'])} variables, "
        f"{len(report['new'])} new, {len(report['skipped'])} skipped",
        f"  restored: {parts(report['restored'])}",
    ]
    if report["vocabularies"]:
        lines.append(f"  vocabularies of the old run: {', '.join(report['vocabularies'])}")
    lines += [f"  new (fresh initialisation): {n}" for n in report["new"]]
    lines += [f"  skipped {s['variable']}: {s['reason']}" for s in report["skipped"]]
    if report["unused"]:
        lines.append(f"  not used from the old run: {parts(report['unused'])}")
    return lines
