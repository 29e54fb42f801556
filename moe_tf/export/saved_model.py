"""SavedModel export: raw uint8 images in (preprocessing inside), every task's probabilities out.

Signatures:
  serving_default(images uint8 [batch, H, W, C]) → {task: probabilities [batch, classes]} (regression: values)
  task_<name>(images) → {"probabilities": …, "class_id": int64 [batch]} (regression: {"value": …})
  metadata() → {task: class names (string [classes])}
The export also holds `moe_tf_export.json` (tasks, class names, input shape) beside `saved_model.pb`.
It loads with `tf.saved_model.load` alone; moe_tf is not needed to serve it.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import tensorflow as tf

METADATA_FILE = "moe_tf_export.json"


def _task_outputs(task, logits):
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
    def serve_task(images):
        probs, class_id = _task_outputs(task, model(images, training=False)["outputs"][task.name])
        return {"value": probs} if class_id is None else {"probabilities": probs, "class_id": class_id}

    return serve_task


def export_model(model, config, tasks, input_shape, out_dir: str) -> str:
    """Writes the SavedModel to `out_dir` (atomically: a failure leaves any previous export intact)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    spec = [tf.TensorSpec([None, *input_shape], tf.uint8, name="images")]

    def serve(images):
        logits = model(images, training=False)["outputs"]
        return {t.name: _task_outputs(t, logits[t.name])[0] for t in tasks}

    archive.add_endpoint("serving_default", serve, input_signature=spec)
    for task in tasks:
        archive.add_endpoint(f"task_{task.name}", _task_endpoint(model, task), input_signature=spec)
    names = {t.name: tf.constant(t.class_names) for t in tasks}
    archive.add_endpoint("metadata", tf.function(lambda: dict(names), input_signature=[]), input_signature=[])

    out_dir = os.path.abspath(out_dir)
    tmp, old = out_dir + ".tmp", out_dir + ".old"
    shutil.rmtree(tmp, ignore_errors=True)
    archive.write_out(tmp, verbose=False)
    meta = {"input_shape": list(input_shape), "input_dtype": "uint8", "experiment": config.experiment.name,
            "tasks": [{"name": t.name, "type": t.kind, "class_names": t.class_names} for t in tasks]}
    with open(os.path.join(tmp, METADATA_FILE), "w") as f:
        json.dump(meta, f, indent=2)
    if os.path.exists(out_dir):
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out_dir, old)
    os.replace(tmp, out_dir)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def export_run(run_dir: str, output: str | None = None, checkpoint: str = "best") -> str:
    """Rebuilds the model of a finished run, restores its weights and exports it (default: `<run_dir>/export`)."""
    from moe_tf.training.checkpoints import restore_run

    config, data, model, _ = restore_run(run_dir, checkpoint)
    return export_model(model, config, data.tasks, data.input_shape, output or os.path.join(run_dir, "export"))
