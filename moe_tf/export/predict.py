"""Prediction with an exported SavedModel (`moe-tf predict`); needs only TensorFlow and the export."""

from __future__ import annotations

import json
import os

import numpy as np

from moe_tf.errors import DataError, MoeTfError
from moe_tf.export.saved_model import METADATA_FILE


def load_export(export_dir: str):
    """Returns (loaded SavedModel, metadata dict). Accepts a run directory too (uses its export/)."""
    import tensorflow as tf

    if os.path.isfile(os.path.join(export_dir, "export", "saved_model.pb")):
        export_dir = os.path.join(export_dir, "export")
    meta_path = os.path.join(export_dir, METADATA_FILE)
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")) or not os.path.isfile(meta_path):
        raise MoeTfError(f"{export_dir} is not a moe-tf export (no saved_model.pb / {METADATA_FILE})")
    with open(meta_path) as f:
        meta = json.load(f)
    return tf.saved_model.load(export_dir), meta


def read_images(path: str, input_shape) -> np.ndarray:
    """Reads a .npy/.npz of uint8 images [N, H, W(, C)] (or one image) and checks it against the export."""
    if not os.path.isfile(path):
        raise DataError(f"input file not found: {path}")
    try:
        arr = np.load(path)
    except Exception as e:
        raise DataError(f"cannot read {path} as .npy/.npz: {e}") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        arr = arr[arr.files[0]]
    h, w, c = input_shape
    if arr.ndim == 2 or (arr.ndim == 3 and tuple(arr.shape) == (h, w, c)):
        arr = arr[None]
    if arr.ndim == 3 and c == 1:
        arr = arr[..., None]
    if tuple(arr.shape[1:]) != (h, w, c):
        raise DataError(f"{path}: images of shape {tuple(arr.shape[1:])} do not match the model input ({h}, {w}, {c})")
    if arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
            raise DataError(f"{path}: expected uint8 pixel values 0-255, got dtype {arr.dtype} "
                            f"with range [{arr.min()}, {arr.max()}]")
        arr = arr.astype(np.uint8)
    return arr


def predict(export_dir: str, input_path: str, batch_size: int = 256) -> list[dict]:
    """One dict per image: {task: {"class": name, "probability": p, "probabilities": [...]}} (regression: value)."""
    loaded, meta = load_export(export_dir)
    images = read_images(input_path, meta["input_shape"])
    serve = loaded.signatures["serving_default"]
    results = []
    for start in range(0, len(images), batch_size):
        out = {k: v.numpy() for k, v in serve(images=images[start : start + batch_size]).items()}
        for i in range(len(next(iter(out.values())))):
            row = {}
            for task in meta["tasks"]:
                values = out[task["name"]][i]
                if task["type"] == "regression":
                    row[task["name"]] = {"value": float(values[0])}
                else:
                    k = int(np.argmax(values))
                    row[task["name"]] = {"class": task["class_names"][k], "probability": float(values[k]),
                                         "probabilities": [round(float(p), 6) for p in values]}
            results.append(row)
    return results
