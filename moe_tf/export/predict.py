"""Prediction with an exported SavedModel (`moe-tf predict`); needs only TensorFlow and the export.

Inputs, by file extension:
- `.npz`: one array per input name (`numpy.savez(path, image=..., x=...)`); `.npy`: the array of a one-input model.
- `.txt`: one text per line, for a model with one text input.
- `.tsv` / `.csv`: a header row naming inputs, one example per row: text and categorical inputs (by input or column
  name), scalar numeric inputs, and a numeric input made of several columns of a training file (by those columns'
  names), so rows laid out like the training file can be predicted as they are.
- `.jsonl`: one JSON object per line, `{"input name": value}` (a string, a number or a nested list).
Tasks whose source's inputs are all in the file are predicted; the others are left out.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from moe_tf.errors import DataError, MoeTfError, error_line
from moe_tf.export.saved_model import METADATA_FILE


def read_metadata(export_dir: str) -> dict:
    """Reads and checks `moe_tf_export.json` (a clear error when it is missing, corrupt or of an older format)."""
    path = os.path.join(export_dir, METADATA_FILE)
    try:
        with open(path) as f:
            meta = json.load(f)
        features, tasks = meta["features"], meta["tasks"]
        for t in tasks:
            t["name"], t["type"], t["class_names"], t["features"]  # noqa: B018 (presence check)
        if not isinstance(features, dict) or not all(
            {"dtype", "shape", "modality"} <= set(s) for s in features.values()
        ):
            raise KeyError("features")
    except OSError as e:
        raise MoeTfError(f"cannot read {path}: {e.strerror}") from None
    except (ValueError, KeyError, TypeError) as e:
        raise MoeTfError(
            f"{path} is corrupt or not from this moe-tf version ({type(e).__name__}: {e}); "
            "re-export the run with `moe-tf export RUN`"
        ) from None
    return meta


def load_export(export_dir: str):
    """Returns (loaded SavedModel, metadata dict). Accepts a run directory too (uses its export/)."""
    import tensorflow as tf

    if os.path.isfile(os.path.join(export_dir, "export", "saved_model.pb")):
        export_dir = os.path.join(export_dir, "export")
    if not os.path.isfile(os.path.join(export_dir, "saved_model.pb")) or not os.path.isfile(
        os.path.join(export_dir, METADATA_FILE)
    ):
        raise MoeTfError(f"{export_dir} is not a moe-tf export (no saved_model.pb / {METADATA_FILE})")
    meta = read_metadata(export_dir)
    try:
        return tf.saved_model.load(export_dir), meta
    except Exception as e:  # noqa: BLE001 - a damaged file raises DecodeError, OSError, OpError, ...
        raise MoeTfError(
            f"{export_dir}: the SavedModel cannot be loaded ({error_line(e)[:200]}); export it again "
            "with `moe-tf export RUN_DIR`"
        ) from None


def _check_feature(path: str, name: str, arr: np.ndarray, spec: dict) -> np.ndarray:
    shape = tuple(spec["shape"])
    if spec["modality"] == "categorical":
        if arr.ndim != 1:
            raise DataError(f"{path}: categorical input {name!r} must be one value per example, got {list(arr.shape)}")
        if spec["dtype"] == "string":
            return np.array([str(v) for v in arr.tolist()], dtype=object)
        if not np.issubdtype(arr.dtype, np.integer):
            raise DataError(f"{path}: categorical input {name!r} takes integer ids, got {arr.dtype}")
        return arr.astype(np.int64)
    if spec["modality"] == "text":
        if arr.ndim != 1 or not all(isinstance(v, str) for v in arr.tolist()):
            raise DataError(
                f"{path}: text input {name!r} must be one string per example, got {arr.dtype} {list(arr.shape)}"
            )
        return np.asarray(arr, dtype=object)
    if arr.dtype == object:
        raise DataError(f"{path}: input {name!r} must hold numbers, got {arr.tolist()[:1]!r}…")
    if tuple(arr.shape) == shape and shape:  # one example without the batch axis
        arr = arr[None]
    if spec["modality"] == "image" and len(shape) == 3 and shape[-1] == 1 and tuple(arr.shape[1:]) == shape[:2]:
        arr = arr[..., None]  # [N, H, W] → [N, H, W, 1]
    if tuple(arr.shape[1:]) != shape:
        raise DataError(
            f"{path}: feature {name!r} has examples of shape {tuple(arr.shape[1:])}, "
            f"which do not match the model input {shape}"
        )
    if spec["modality"] == "image":
        if arr.dtype != np.uint8:
            if not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() > 255:
                raise DataError(
                    f"{path}: feature {name!r}: expected uint8 pixel values 0-255, got dtype {arr.dtype} "
                    f"with range [{arr.min()}, {arr.max()}]"
                )
        return arr.astype(np.uint8)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataError(f"{path}: feature {name!r} has dtype {arr.dtype}; expected numbers")
    arr = arr.astype(spec["dtype"])
    if np.issubdtype(arr.dtype, np.floating) and not np.isfinite(arr).all():
        raise DataError(f"{path}: feature {name!r} has NaN or infinite values")
    return arr


def _read_text_file(path: str) -> list[str]:
    from moe_tf.data.delimited import read_utf8

    return read_utf8(path).splitlines()


def _read_lines(path: str, features: dict) -> dict[str, np.ndarray]:
    """A .txt file: one text per line for the model's only text input (blank lines are empty texts)."""
    text = [f for f, spec in features.items() if spec["modality"] == "text"]
    if len(text) != 1:
        raise DataError(
            f"{path}: a .txt file holds one text per line, for a model with one text input; this model "
            f"has {len(text)} ({', '.join(text) or 'none'}); use .tsv or .jsonl with named inputs"
        )
    lines = _read_text_file(path)
    if lines and lines[-1] == "":
        lines = lines[:-1]
    return {text[0]: np.array(lines, dtype=object)}


def _read_table(path: str, features: dict) -> dict[str, np.ndarray]:
    """A .tsv / .csv with a header row naming inputs."""
    import csv

    tsv = path.lower().endswith(".tsv")
    rows = list(
        csv.reader(
            _read_text_file(path), delimiter="\t" if tsv else ",", quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL
        )
    )
    rows = [r for r in rows if r]
    if not rows:
        raise DataError(f"{path}: empty file (expected a header row naming the inputs)")
    header, body = rows[0], rows[1:]
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise DataError(f"{path}, row {i + 2}: {len(row)} cells, expected {len(header)} ({', '.join(header)})")
    known = set(features) | {
        c
        for spec in features.values()
        for c in [spec.get("options", {}).get("column"), *spec.get("options", {}).get("columns", [])]
        if c
    }
    if not set(header) & known:
        raise DataError(
            f"{path}: no column named like a model input; the header names {', '.join(header)}, "
            f"the model takes {', '.join(sorted(features))}"
        )
    index = {name: j for j, name in enumerate(header)}

    def column(name: str) -> list[str]:
        return [row[index[name]] for row in body]

    out = {}
    for feature, spec in features.items():
        options = spec.get("options", {})
        names = options.get("columns") or []
        if feature in index or options.get("column") in index:
            name = feature if feature in index else options["column"]
            cells = column(name)
            if spec["modality"] in ("text", "categorical"):
                cells = cells if spec["modality"] == "text" else [c.strip() for c in cells]
                out[feature] = (
                    np.array(cells, dtype=object) if spec["dtype"] == "string" else _parse(path, name, cells, int)
                )
            elif tuple(spec["shape"]) == ():
                out[feature] = _parse(path, name, cells)
            else:
                raise DataError(
                    f"{path}: input {feature!r} has shape {spec['shape']}; give it in a .jsonl "
                    "(a list per example) or a .npz" + (f", or as the columns {', '.join(names)}" if names else "")
                )
        elif names and any(n in index for n in names):
            absent = [n for n in names if n not in index]
            if absent:
                raise DataError(
                    f"{path}: input {feature!r} is made of the columns {', '.join(names)}; the header lacks "
                    f"{', '.join(absent)}"
                )
            out[feature] = np.stack([_parse(path, n, column(n)) for n in names], axis=1)
    return out


def _parse(path: str, name: str, cells: list[str], kind=float) -> np.ndarray:
    """A column's cells as floats (or, with `kind=int`, int64 ids); a cell that is not one names its row."""
    values = []
    for row, cell in enumerate(cells, start=2):
        try:
            values.append(kind(cell))
        except ValueError:
            what = "a number" if kind is float else "an integer id"
            raise DataError(f"{path}, row {row}: column {name!r} is {cell!r}, not {what}") from None
    return np.array(values, np.float64 if kind is float else np.int64)


def _read_jsonl(path: str) -> dict[str, np.ndarray]:
    columns: dict[str, list] = {}
    records = [(i + 1, line) for i, line in enumerate(_read_text_file(path)) if line.strip()]
    for n, (line_no, line) in enumerate(records):
        try:
            record = json.loads(line)
        except ValueError as e:
            raise DataError(f"{path}, line {line_no}: not JSON ({e})") from None
        if not isinstance(record, dict):
            raise DataError(f'{path}, line {line_no}: expected an object {{"input name": value}}')
        if n and set(record) != set(columns):
            raise DataError(f"{path}, line {line_no}: keys {sorted(record)} differ from line 1's {sorted(columns)}")
        for k, v in record.items():
            columns.setdefault(k, []).append(v)
    out = {}
    for k, values in columns.items():
        if all(isinstance(v, str) for v in values):
            out[k] = np.array(values, dtype=object)
        else:
            try:
                out[k] = np.array(values)
            except ValueError as e:
                raise DataError(f"{path}: input {k!r}: examples of different shapes ({e})") from None
    return out


INPUT_TYPES = {
    ".npz": "one array per input name",
    ".npy": "the array of a one-input model",
    ".txt": "one text per line",
    ".tsv": "a header row naming inputs, one example per row",
    ".csv": "a header row naming inputs, one example per row",
    ".jsonl": "one {input: value} object per line",
}


def check_input_file(path: str) -> None:
    """An input file exists and is of a type `read_inputs` reads (a DataError listing the types otherwise)."""
    if not os.path.isfile(path):
        raise DataError(f"input file not found: {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext not in INPUT_TYPES:
        kinds = "; ".join(f"{e} ({what})" for e, what in INPUT_TYPES.items())
        raise DataError(f"{path}: input type {ext or '(no extension)'!r} is not supported; give one of: {kinds}")


def read_inputs(path: str, features: dict) -> dict[str, np.ndarray]:
    """Reads an input file (see the module docstring) and checks each input against its spec."""
    check_input_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".txt", ".tsv", ".csv", ".jsonl"):
        arrays = (
            _read_lines(path, features)
            if ext == ".txt"
            else _read_jsonl(path)
            if ext == ".jsonl"
            else _read_table(path, features)
        )
        return check_inputs(path, arrays, features)
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.lib.npyio.NpzFile):
            with loaded:
                arrays = {k: loaded[k] for k in loaded.files}
        else:
            if len(features) != 1:
                raise DataError(
                    f"{path}: the model has {len(features)} inputs ({', '.join(features)}); give a .npz "
                    "with one array per input name (numpy.savez(path, name=array, ...))"
                )
            arrays = {next(iter(features)): loaded}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as e:
        raise DataError(f"cannot read {path} as .npy/.npz: {e}") from None
    return check_inputs(path, arrays, features)


def check_inputs(path: str, arrays: dict, features: dict) -> dict[str, np.ndarray]:
    """`arrays` ({name: array}) checked against the model's input specs (`moe_tf_export.json`'s "features") and
    converted to what the model takes; `path` names them in errors."""
    known = {k: v for k, v in arrays.items() if k in features}
    if not known:
        if len(arrays) == 1 and len(features) == 1:  # one unnamed array for a one-input model
            known = {next(iter(features)): next(iter(arrays.values()))}
        else:
            raise DataError(
                f"{path}: no array named like a model input; it has {sorted(arrays)}, "
                f"the model takes {sorted(features)}"
            )
    out = {name: _check_feature(path, name, arr, features[name]) for name, arr in known.items()}
    lengths = {name: len(a) for name, a in out.items()}
    if len(set(lengths.values())) > 1:
        raise DataError(f"{path}: inputs have different numbers of examples: {lengths}")
    return out


def predict(export_dir: str, input_path: str, batch_size: int = 256) -> list[dict]:
    """One dict per example: {task: {"class": name, "probability": p, "probabilities": [...]}} (regression: value).

    Only tasks whose inputs are all in the file are predicted.
    """
    check_input_file(input_path)  # before the SavedModel loads (seconds)
    loaded, meta = load_export(export_dir)
    inputs = read_inputs(input_path, meta["features"])
    tasks = [t for t in meta["tasks"] if set(t["features"]) <= set(inputs)]
    if not tasks:
        needs = {t["name"]: t["features"] for t in meta["tasks"]}
        raise DataError(
            f"{input_path}: no task can be predicted from the inputs {sorted(inputs)}; each task needs: {needs}"
        )
    n = len(next(iter(inputs.values())))
    results = [{} for _ in range(n)]
    for task in tasks:
        serve = loaded.signatures[f"task_{task['name']}"]
        for start in range(0, n, batch_size):
            out = serve(**{f: inputs[f][start : start + batch_size] for f in task["features"]})
            values = (out["value"] if task["type"] == "regression" else out["probabilities"]).numpy()
            for i, row in enumerate(values):
                if task["type"] == "regression":
                    results[start + i][task["name"]] = {"value": float(row[0])}
                else:
                    k = int(np.argmax(row))
                    results[start + i][task["name"]] = {
                        "class": task["class_names"][k],
                        "probability": float(row[k]),
                        "probabilities": [round(float(p), 6) for p in row],
                    }
    return results
