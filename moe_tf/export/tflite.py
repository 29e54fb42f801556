"""TFLite export: one `.tflite` per quantisation mode, with each task's signature (`task_<name>`, as in the
SavedModel), checked with the LiteRT interpreter against the SavedModel on the test split.

Modes: `none` (float32), `dynamic` (int8 weights, float activations), `float16` (float16 weights), `int8` (int8
weights and activations, calibrated on a sample of the training split; ops without an int8 kernel stay float).
Categorical inputs with a vocabulary convert (string → id tables are TFLite built-ins); an integer categorical input
is taken as its decimal text in the TFLite model. Hashed ones cannot (the fingerprint hash needs TensorFlow's ops).
`compression.json` beside the models holds, per mode, the file size, the size ratio to the SavedModel, and per task
the test metric of both and the largest difference of their outputs.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings

import numpy as np
import tensorflow as tf

from moe_tf.errors import MoeTfError, error_line
from moe_tf.export.saved_model import export_model
from moe_tf.run_dir import atomic_write, directory_bytes

QUANTIZE_MODES = ("none", "dynamic", "float16", "int8")
COMPRESSION_FILE = "compression.json"
CALIBRATION_EXAMPLES = 256
BATCH = 64


def export_tflite(parts, out_dir: str, quantize: str = "none", echo=print) -> dict:
    """Converts the restored run `parts` (moe_tf.components.Components) to `<out_dir>/<quantize>.tflite`, evaluates
    it and records the comparison in `<out_dir>/compression.json`. Returns that mode's entry. `quantize` is one of
    QUANTIZE_MODES (moe_tf.run.export_tflite checks it before the run is rebuilt)."""
    data, tasks = parts.data, parts.data.tasks
    text = [f for f, spec in data.features.items() if spec.modality == "text"]  # categorical ones convert (below)
    if text:
        raise MoeTfError(
            f"--format tflite: the text input(s) {text} need TensorFlow's string ops, which TFLite's "
            "built-in op set lacks; serve this model from its SavedModel (moe-tf export RUN)"
        )
    hashed = [
        f for f, spec in data.features.items() if spec.modality == "categorical" and spec.options.get("hash_buckets")
    ]
    if hashed:
        raise MoeTfError(
            f"--format tflite: the categorical input(s) {hashed} are hashed (hash_buckets), and TensorFlow's "
            "fingerprint hash is not a TFLite built-in op; give them a vocabulary instead (max_tokens, min_count), "
            "or serve this model from its SavedModel (moe-tf export RUN)"
        )
    split = [f for f, spec in data.features.items() if spec.options.get("separator")]
    if split:
        raise MoeTfError(
            f"--format tflite: the multi-valued input(s) {split} are split into values with TensorFlow's string ops, "
            "which TFLite's built-in op set lacks; serve this model from its SavedModel (moe-tf export RUN)"
        )
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise MoeTfError(f"--output {out_dir} is a file; give a directory")
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise MoeTfError(f"--output {out_dir}: cannot create it: {e.strerror}") from None
    with tempfile.TemporaryDirectory(prefix="moe_tf_tflite_") as tmp:
        saved = export_model(
            parts.model, parts.config, data, os.path.join(tmp, "saved_model"), integer_ids_as_text=True
        )
        echo(f"converting to TFLite (quantize: {quantize}) ...")
        signatures = [f"task_{t.name}" for t in tasks]
        content = convert(saved, signatures, quantize, lambda: calibration(data))
        path = os.path.join(out_dir, f"{quantize}.tflite")
        atomic_write(path, content)
        saved_bytes = directory_bytes(saved)
        float_bytes = len(content) if quantize == "none" else len(convert(saved, signatures, "none", None))
        entry = {
            "file": os.path.basename(path),
            "bytes": len(content),
            "saved_model_bytes": saved_bytes,
            "size_ratio": saved_bytes / len(content),
            "float_tflite_bytes": float_bytes,
            "size_ratio_to_float": float_bytes / len(content),
            "tasks": compare_on_test(saved, content, data),
        }
    record = os.path.join(out_dir, COMPRESSION_FILE)
    report = {}
    if os.path.exists(record):
        try:
            with open(record) as f:
                report = json.load(f)
        except (OSError, ValueError):
            report = {}  # unreadable: rewritten with this mode
    report[quantize] = entry
    atomic_write(record, json.dumps(report, indent=2))
    return entry


def convert(saved_model_dir: str, signatures: list[str], quantize: str, representative) -> bytes:
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=signatures)
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if quantize == "int8":
        converter.representative_dataset = representative
    try:
        with warnings.catch_warnings():  # int8 calibration runs TensorFlow's own (deprecated) interpreter
            warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated.*")
            return converter.convert()
    except Exception as e:  # noqa: BLE001 - the converter raises ConverterError or plain exceptions by op
        raise MoeTfError(f"TFLite conversion failed ({type(e).__name__}): {error_line(e)}") from None


def calibration(data):
    """The representative sample for int8: up to CALIBRATION_EXAMPLES training examples of each source, one at a
    time, for each signature (task) that reads the source (each signature is a subgraph with its own activation
    ranges), as (signature, {input: array [1, ...]})."""
    for name, source in data.sources.items():
        tasks = [t for t in data.tasks if t.source == name]
        if not tasks or "train" not in source.splits:
            continue
        for x, _ in source.splits["train"].take(CALIBRATION_EXAMPLES).as_numpy_iterator():
            x = as_tflite_inputs(x, data.features)
            for t in tasks:
                yield f"task_{t.name}", {f: x[f][None] for f in t.features}


def as_tflite_inputs(x: dict, features: dict) -> dict:
    """Inputs as the TFLite model takes them: integer categorical ids as their decimal text."""
    out = dict(x)
    for f, spec in features.items():
        if f in out and spec.modality == "categorical" and spec.dtype != "string":
            out[f] = np.char.mod("%d", np.asarray(out[f])).astype(object)
    return out


def compare_on_test(saved_model_dir: str, content: bytes, data) -> dict:
    """Per task on the test split: the metric (accuracy; regression: MAE) of the SavedModel and of the TFLite model
    on the examples labelled for it, and the largest absolute difference between their outputs."""
    from ai_edge_litert.interpreter import Interpreter

    loaded = tf.saved_model.load(saved_model_dir)
    interpreter = Interpreter(model_content=content)
    out = {}
    for name, source in data.sources.items():
        if source.sizes.get("test", 0) == 0 or "test" not in source.splits:
            continue
        batches = list(source.splits["test"].batch(BATCH).as_numpy_iterator())
        for task in (t for t in data.tasks if t.source == name):
            key = "value" if task.kind == "regression" else "probabilities"
            runner = interpreter.get_signature_runner(f"task_{task.name}")
            reference, lite, labels = [], [], []
            for x, y in batches:
                x = as_tflite_inputs(x, data.features)
                feats = {f: x[f] for f in task.features}
                reference.append(loaded.signatures[f"task_{task.name}"](**feats)[key].numpy())
                lite.append(_run(runner, feats)[key])
                labels.append(y[task.label])
            reference, lite, labels = map(np.concatenate, (reference, lite, labels))
            out[task.name] = _task_metrics(task, reference, lite, labels)
    return out


def _run(runner, feats: dict) -> dict:
    """The TFLite signature on one batch (the batch dimension is dynamic: the runner resizes to each batch)."""
    return {k: np.asarray(v) for k, v in runner(**feats).items()}


def _task_metrics(task, reference: np.ndarray, lite: np.ndarray, labels: np.ndarray) -> dict:
    from moe_tf.data.tasks import map_labels

    if task.kind == "regression":
        keep = ~np.isnan(labels)
        err = lambda p: float(np.mean(np.abs(p[keep, 0] - labels[keep])))  # noqa: E731
        metric, a, b = "mae", err(reference), err(lite)
    else:
        labels = map_labels(labels.astype(np.int64), task.label_table)
        keep = labels >= 0
        acc = lambda p: float(np.mean(np.argmax(p[keep], axis=-1) == labels[keep]))  # noqa: E731
        metric, a, b = "accuracy", acc(reference), acc(lite)
    return {
        "metric": metric,
        "saved_model": a,
        "tflite": b,
        "delta": b - a,
        "examples": int(keep.sum()),
        "max_abs_diff": float(np.max(np.abs(reference - lite))) if len(lite) else 0.0,
    }


def compression_table(entry: dict, quantize: str) -> str:
    """Size and each task's test metric, SavedModel against TFLite."""
    kib = lambda n: f"{n / 1024:,.1f} KiB"  # noqa: E731
    lines = [
        f"TFLite ({quantize}): {kib(entry['bytes'])}; float32 TFLite {kib(entry['float_tflite_bytes'])} "
        f"({entry['size_ratio_to_float']:.1f}x); SavedModel {kib(entry['saved_model_bytes'])} "
        f"({entry['size_ratio']:.1f}x)",
        f"{'task':<14}{'metric':<10}{'SavedModel':>12}{'TFLite':>10}{'delta':>9}{'max |diff|':>12}",
    ]
    for task, m in entry["tasks"].items():
        lines.append(
            f"{task:<14}{m['metric']:<10}{m['saved_model']:>12.4f}{m['tflite']:>10.4f}{m['delta']:>+9.4f}"
            f"{m['max_abs_diff']:>12.2e}"
        )
    return "\n".join(lines)
