"""SavedModel export: raw named features in (preprocessing inside), every task's predictions out.

Signatures (each input is a raw feature by name, with the dtype and shape of its spec, batched):
  serving_default(every feature) → {task: probabilities [batch, classes]} (regression: values [batch, 1])
  task_<name>(the features of the task's source) → {"probabilities", "class_id" int64 [batch]} (regression: "value")
  gates(every feature) → {task: the weights of the gate the task reads, float32 [batch, experts]} (gated
      architectures only; experts in the layout of `moe_tf_export.json`'s "experts")
  metadata() → {task: class names (string [classes])}
With several sources, each task is computed from its own source's features only, as in training.
The export also holds `moe_tf_export.json` (features, tasks, class names) beside `saved_model.pb`.
It loads with `tf.saved_model.load` alone; moe_tf is not needed to serve it.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import tensorflow as tf

from moe_tf.errors import MoeTfError
from moe_tf.training.nonfinite import nonfinite_variables

METADATA_FILE = "moe_tf_export.json"
FORMAT_VERSION = 2


def task_outputs(task, logits):
    """A task's logits as what the export serves: (probabilities [batch, classes], class ids [batch]) for
    classification and binary tasks (binary: [1 - p, p]), (values, None) for regression."""
    logits = tf.cast(logits, tf.float32)
    if task.kind == "classification":
        probs = tf.nn.softmax(logits, axis=-1)
        return probs, tf.argmax(probs, axis=-1)
    if task.kind == "binary":
        p = tf.sigmoid(logits)  # [batch, 1]
        probs = tf.concat([1.0 - p, p], axis=-1)  # [batch, 2]
        return probs, tf.argmax(probs, axis=-1)
    return logits, None


def _task_endpoint(model, task):
    def serve_task(inputs):
        probs, class_id = task_outputs(task, model(inputs, training=False)["outputs"][task.name])
        return {"value": probs} if class_id is None else {"probabilities": probs, "class_id": class_id}

    return serve_task


def ids_as_text(spec):
    """An integer categorical input's spec as a string input (other specs unchanged)."""
    if spec.modality == "categorical" and spec.dtype != "string":
        return type(spec)("string", spec.shape, spec.modality, spec.options)
    return spec


def signature_specs(features: dict, names) -> list[dict]:
    """The input signature of an endpoint taking `names` (one dict of named, batched TensorSpecs)."""
    return [{f: features[f].tensor_spec(f) for f in sorted(names)}]


def export_model(model, config, data, out_dir: str, integer_ids_as_text: bool = False) -> str:
    """Writes the SavedModel to `out_dir` (atomically: a failure leaves any previous export intact).

    Args:
        model: the trained MultiTaskModel.
        config: the run's ExperimentConfig.
        data: its TaskData (features, sources, tasks).
        integer_ids_as_text: integer categorical inputs are taken as their decimal text (what TFLite converts: its
            built-in lookups map strings, not integers).
    """
    tasks, features = data.tasks, data.features
    if integer_ids_as_text:
        features = {f: ids_as_text(spec) for f, spec in features.items()}
    out_dir = os.path.abspath(out_dir)
    parent = os.path.dirname(out_dir)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise MoeTfError(f"cannot export to {out_dir}: it is a file; give a directory path")
    if not os.path.isdir(parent):
        raise MoeTfError(f"cannot export to {out_dir}: {parent} is not a directory")
    bad = nonfinite_variables(model.variables)
    if bad:
        raise MoeTfError(f"not exporting: {len(bad)} variable(s) hold a NaN or an Inf (e.g. {bad[0]})")
    for f, vectorizers in model.vocabulary_layers().items():
        if not vectorizers[0].has_vocabulary:
            raise ValueError(f"input {f!r} has no vocabulary (neither built from data nor restored)")
    archive = keras.export.ExportArchive()
    archive.track(model)
    groups: dict[tuple, list] = {}  # the tasks computed from one set of input features
    for t in tasks:
        groups.setdefault(tuple(t.features), []).append(t)

    def serve(inputs):
        out = {}
        for names, group in groups.items():
            logits = model({f: inputs[f] for f in names}, training=False)["outputs"]
            out.update({t.name: task_outputs(t, logits[t.name])[0] for t in group})
        return out

    archive.add_endpoint("serving_default", serve, input_signature=signature_specs(features, features))
    for task in tasks:
        archive.add_endpoint(
            f"task_{task.name}", _task_endpoint(model, task), input_signature=signature_specs(features, task.features)
        )
    task_gates = model.task_gates()
    if task_gates:

        def serve_gates(inputs):
            out = {}
            for names, group in groups.items():
                routes = model({f: inputs[f] for f in names}, training=False)["gates"]
                out.update({t.name: routes[task_gates[t.name]]["weights"] for t in group if t.name in task_gates})
            return out

        archive.add_endpoint("gates", serve_gates, input_signature=signature_specs(features, features))
    names = {t.name: tf.constant(t.class_names) for t in tasks}
    archive.add_endpoint("metadata", tf.function(lambda: dict(names), input_signature=[]), input_signature=[])

    tmp, old = out_dir + ".tmp", out_dir + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        archive.write_out(tmp, verbose=False)
    except (OSError, tf.errors.OpError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise MoeTfError(f"cannot write the export to {out_dir}: {getattr(e, 'message', e)}") from None
    meta = {
        "format_version": FORMAT_VERSION,
        "experiment": config.experiment.name,
        "features": {f: spec.to_dict() for f, spec in features.items()},
        "tasks": [
            {"name": t.name, "type": t.kind, "class_names": t.class_names, "features": t.features} for t in tasks
        ],
        "experts": {t: model.mixture.expert_names()[g] for t, g in task_gates.items()},
    }
    with open(os.path.join(tmp, METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2)
    if os.path.exists(out_dir):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir
