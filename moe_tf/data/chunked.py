"""Delimited (`csv`/`tsv` with `stream: true`) and Parquet files streamed: read in chunks of `CHUNK_ROWS` rows,
never whole, with the column options and the errors (file and line) of the in-memory csv source.

One pass at the start reads every file once: it checks every cell (a bad one is named by file and line, as the
in-memory source names it), counts each split, learns each label's kind and classes (integers, numbers or names, as
the in-memory source does), which numeric columns have missing cells, and the training statistics (numeric moments,
categorical counts, a bucket sample). Training reads the files again each epoch in a seeded file order, `cycle_length`
files interleaved, through the shuffle buffer. A split cut from the training files (`eval_fraction`,
`test_fraction`) takes the rows whose `split_by` key hashes into its fraction, in the pass and in every epoch.

The pass is kept in the run directory (moe_tf.data.streamed): `--resume`, `evaluate` and `export` read it instead.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf

from moe_tf.data.base import LabelInfo, SourceData
from moe_tf.data.statistics import SourceStatistics
from moe_tf.data.streamed import PassProgress, file_sizes, match_files, reusable_splits, seeded_files, settings_of
from moe_tf.data.table import ROLES, LabelCells, Table
from moe_tf.errors import DataError

CHUNK_ROWS = 4096
CYCLE_LENGTH = 4  # training files read at once


def open_lines(path: str) -> Iterator[str]:
    """A text file's lines (any path tf.io.gfile reads; *.gz decompressed); a byte that is not UTF-8 is an error
    naming its line."""
    raw = tf.io.gfile.GFile(path, "rb") if "://" in path else open(path, "rb")
    with raw:
        stream = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
        for number, line in enumerate(io.BufferedReader(stream) if path.endswith(".gz") else stream, 1):
            try:
                yield line.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(
                    f"{path}, line {number}: not UTF-8 text (byte {line[e.start]:#04x} at column {e.start + 1}); "
                    "save the file as UTF-8"
                ) from None


def subset(table: Table, keep: np.ndarray) -> Table:
    """The rows of `table` where `keep` is true."""
    index = np.flatnonzero(keep)
    columns = {c: (v[index] if isinstance(v, np.ndarray) else [v[i] for i in index]) for c, v in table.columns.items()}
    return Table(table.path, columns, [table.lines[i] for i in index], table.unit)


class StreamedFiles:
    """A streamed delimited or Parquet source: its files per split, which splits are cut by `split_by`, and the
    tables of each split's rows."""

    def __init__(self, source: Any):  # a DelimitedSource
        self.source = source
        cfg, self.where = source.config, f"data.sources.{source.name}"
        own = {role: getattr(cfg, role) for role in ("eval", "test")}
        self.cut = [role for role, globs in own.items() if globs is None and getattr(cfg, f"{role}_fraction") > 0]
        train = cfg.path if cfg.path is not None else cfg.train
        self.files = {"train": match_files(train, f"{self.where}.{'path' if cfg.path is not None else 'train'}")}
        for role, globs in own.items():
            if globs is not None:
                self.files[role] = match_files(globs, f"{self.where}.{role}")
            elif role in self.cut:
                self.files[role] = self.files["train"]

    def hashed(self, role: str) -> bool:
        """Whether the role's rows are picked from its files by the `split_by` hash."""
        return role in self.cut or (role == "train" and bool(self.cut))

    def tables(self, path: str, roles: list[str]) -> Iterator[tuple[str, Table]]:
        """(role, table) of each chunk of a file, for each of `roles` that reads it."""
        source = self.source
        for table in source.file_tables(path, self.where):
            picked = source.roles(table) if any(self.hashed(r) for r in roles) else None
            for role in roles:
                if picked is not None and self.hashed(role):
                    yield role, subset(table, picked == ROLES.index(role))
                else:
                    yield role, table


def load_streamed(source: Any) -> SourceData:  # a DelimitedSource
    """A streamed delimited or Parquet source: one pass over its files (or the run's stored pass), and datasets
    that read them in chunks."""
    cfg = source.config
    files = StreamedFiles(source)
    identity = {role: file_sizes(paths) for role, paths in files.files.items()}
    settings = settings_of(cfg)
    stored = reusable_splits(source.stored, source.name, identity, files.where, settings)
    record = source.stored.of(source.name) if stored else None
    if "train" not in stored:
        stored = {}  # a changed training split: the whole pass again (label kinds come from every split)
    scan = [role for role in files.files if role not in stored]
    preliminary = source.specs(np.zeros(len(cfg.numeric), bool))
    statistics = SourceStatistics(preliminary)
    if record is not None and stored:
        kept = statistics.from_record(record.get("statistics", {}))
        if kept is None:
            stored, scan = {}, list(files.files)
        else:
            statistics = kept
    sizes = {role: entry["examples"] for role, entry in stored.items()}
    per_file = dict(stored["train"].get("per_file", {})) if "train" in stored else {}
    cells = {label: LabelCells() for label in cfg.labels}
    gaps = np.zeros(len(cfg.numeric), bool)
    skipped = sorted({p for entry in stored.values() for p in entry.get("skipped", [])})  # left out before
    if scan:
        counted, gaps, bad, train_files = _pass(files, scan, cells, statistics if "train" in scan else None)
        sizes.update(counted)
        per_file.update(train_files)
        skipped = sorted({*skipped, *bad})
    if stored and record is not None:  # the stored kinds; a rescanned eval or test split is checked against them
        kinds = {label: (_info(entry), entry["mode"]) for label, entry in record["labels"].items() if label in cells}
        gaps = np.asarray(record["gaps"], bool)
    else:
        kinds = {label: c.info(label, cfg.classes.get(label), files.where) for label, c in cells.items()}
    for label, c in cells.items():
        c.check(label, *kinds[label], source.name)
    if sizes.get("train", 0) == 0:
        raise DataError(f"{files.where}: no training rows in {', '.join(files.files['train'])}")
    empty = [r for r in ("eval", "test") if sizes.get(r, 0) == 0 and r in files.files]  # recorded, not read
    specs = source.specs(gaps)
    statistics.features = specs
    labels = source.label_infos({label: info for label, (info, _) in kinds.items()})
    good = {role: [p for p in paths if p not in skipped] for role, paths in files.files.items() if role not in empty}
    signature = _signature(specs, labels)

    def chunks(path, role):
        """One file's chunks of `role` as ({input: [n, ...]}, {label: [n]}) (path and role: bytes from tf.data)."""
        path, role = path.decode(), role.decode()
        for _, table in files.tables(path, [role]):
            if len(table):
                yield source.arrays(table, kinds)

    def file_chunks(role):
        """path → the dataset of one file's chunks of `role`."""
        return lambda path: tf.data.Dataset.from_generator(chunks, output_signature=signature, args=(path, role))

    def read(paths, role):
        return tf.data.Dataset.from_tensor_slices(paths).flat_map(file_chunks(role))

    def train_epoch(seed, shard=None):
        """The training rows of one epoch: the files in a seeded order (shard k of n: its files k, k + n, …),
        CYCLE_LENGTH of them interleaved."""
        return seeded_files(good["train"], seed, shard, file_chunks("train"), CYCLE_LENGTH).unbatch()

    record_out = {
        "settings": settings,
        "splits": {
            role: {
                "files": identity[role],
                "examples": sizes[role],
                "skipped": [p for p in skipped if p in paths],
                **({"per_file": per_file} if role == "train" else {}),
            }
            for role, paths in files.files.items()
        },
        "statistics": statistics.to_record(),
        "labels": {
            label: {"num_classes": i.num_classes, "class_names": i.class_names, "kind": i.kind, "mode": mode}
            for label, (i, mode) in kinds.items()
        },
        "gaps": gaps.tolist(),
    }
    return SourceData(
        splits={role: read(paths, role).unbatch() for role, paths in good.items()},
        features=specs,
        labels=labels,
        sizes={role: sizes[role] for role in good},
        sample_weights={label: label + "__weight" for label in cfg.weights},
        train_epoch=train_epoch,
        statistics=statistics,
        skipped_files=skipped,
        pass_record=record_out,
        file_examples=[per_file.get(p, 0) for p in good["train"]],
    )


def _info(entry: dict) -> LabelInfo:
    return LabelInfo(int(entry["num_classes"]), list(entry["class_names"]), entry["kind"])


def _pass(files: StreamedFiles, roles: list[str], cells: dict[str, LabelCells], statistics):
    """One pass over the files of `roles` (each file read once): → ({role: rows}, numeric columns with a missing
    cell, files left out as unreadable, {file: training rows}). Gathers label cells, and the training statistics
    when given."""
    source, cfg = files.source, files.source.config
    readers: dict[str, list[str]] = {}
    for role in roles:
        for path in files.files[role]:
            readers.setdefault(path, []).append(role)
    sizes = {role: 0 for role in roles}
    gaps = np.zeros(len(cfg.numeric), bool)
    skipped, train_rows = [], {}
    progress = PassProgress(source.echo, files.where, len(readers))
    for path, its_roles in readers.items():
        capped = statistics is not None and cfg.max_rows is not None and statistics.rows >= cfg.max_rows
        mine = statistics.empty() if statistics is not None and not capped else None
        counts = {role: 0 for role in its_roles}
        try:
            for role, table in files.tables(path, its_roles):
                if not len(table):
                    continue
                x, _ = source.arrays(table, {})
                for label, c in cells.items():
                    c.add("train" if files.hashed(role) else role, table, label)  # as in memory: the whole file
                if cfg.numeric:
                    gaps |= np.isnan(x[cfg.numeric_feature]).any(axis=0)
                if role == "train" and mine is not None:
                    mine.add(x)
                counts[role] += len(table)
                progress.add(len(table))
        except source.unreadable as e:
            if not cfg.skip_corrupt:
                raise DataError(
                    f"{path}: unreadable ({e}); set {files.where}.skip_corrupt: true to leave out such files"
                ) from None
            skipped.append(path)
            continue
        if mine is not None:
            statistics.merge(mine)
        for role, n in counts.items():
            sizes[role] += n
        if "train" in counts:
            train_rows[path] = counts["train"]
        progress.file_done()
    progress.end(statistics.rows if statistics is not None else None, cfg.max_rows)
    return sizes, gaps, skipped, train_rows


def _signature(specs, labels):
    """The output signature of a chunk: ({input: [None, ...]}, {label: [None]})."""
    x = {name: tf.TensorSpec([None, *spec.shape], spec.tf_dtype) for name, spec in specs.items()}
    y = {
        name: tf.TensorSpec([None], tf.float32 if info.kind in ("value", "weight") else tf.int64)
        for name, info in labels.items()
    }
    return x, y
