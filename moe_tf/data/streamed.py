"""What every streamed source (tfrecord, csv/tsv with `stream: true`, parquet) shares: its files by glob, and the
record of its one pass over them — the files it read (path and size), each split's examples, the files it left out
and the training statistics — which the run directory keeps (`data_statistics.json`) so that `--resume`, `evaluate`
and `export` read it instead of passing over the files again.

`--resume` refuses a changed file set (a file added, removed or of another size), naming the difference, unless
`--allow-data-change`: then the changed splits are read again. `evaluate` and `export` keep the stored training
statistics whatever the files hold now (the model was trained with them) and count a changed eval or test split
again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import tensorflow as tf

from moe_tf.errors import DataError

STATISTICS_FILE = "data_statistics.json"
RECORD_VERSION = 1

# What a source does when the stored pass is of other files: `refuse` (--resume), `rescan` (--resume
# --allow-data-change), `keep` (evaluate, export: the training statistics stay the stored ones).
OnChange = Literal["refuse", "rescan", "keep"]


@dataclass
class StoredPass:
    """The run's stored pass records ({source: record}) and what a changed file set does."""

    records: dict = field(default_factory=dict)
    on_change: OnChange = "refuse"

    def of(self, source: str) -> dict | None:
        return self.records.get(source)


def read_stored_pass(run_dir: str, on_change: OnChange) -> StoredPass | None:
    """The run's stored pass (None when it has none: it streamed nothing, or predates it)."""
    path = os.path.join(run_dir, STATISTICS_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            records = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"cannot read {path}: {e}; delete it to pass over the data files again") from None
    if records.get("version") != RECORD_VERSION:
        return None
    return StoredPass(records.get("sources", {}), on_change)


def pass_records_json(records: dict) -> str:
    return json.dumps({"version": RECORD_VERSION, "sources": records})


def match_files(globs: str | list[str] | None, field_name: str) -> list[str]:
    """The files of a split: every glob's matches (sorted, each file once); a glob that matches nothing is an
    error naming the field."""
    if globs is None:
        return []
    globs = [globs] if isinstance(globs, str) else list(globs)
    out: list[str] = []
    for i, pattern in enumerate(globs):
        matched = sorted(tf.io.gfile.glob(pattern))
        if not matched:
            where = field_name + (f"[{i}]" if len(globs) > 1 else "")
            raise DataError(f"{where}: {pattern!r} matches no file")
        out += [m for m in matched if m not in out]
    return out


def file_sizes(paths: list[str]) -> list[list]:
    """[[path, bytes], ...]: what identifies a split's files between a run and its resumption."""
    return [[p, int(tf.io.gfile.stat(p).length)] for p in paths]


def difference(before: list[list], now: list[list]) -> str:
    """How a split's files differ from the stored ones, in words ("" when they do not)."""
    old, new = dict(map(tuple, before)), dict(map(tuple, now))
    parts = []
    added = [p for p in new if p not in old]
    removed = [p for p in old if p not in new]
    resized = [f"{p} ({old[p]} → {new[p]} bytes)" for p in new if p in old and old[p] != new[p]]
    for what, paths in (("added", added), ("removed", removed), ("changed", resized)):
        if paths:
            shown = ", ".join(paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            parts.append(f"{len(paths)} {what}: {shown}")
    return "; ".join(parts)


FILE_FIELDS = ("path", "train", "eval", "test")


def settings_of(config) -> str:
    """A fingerprint of a streamed source's settings other than its files (what the stored pass also depends on:
    columns, label classes, fractions, split_by, max_rows, …)."""
    settings = config.model_dump(mode="json", exclude=set(FILE_FIELDS))
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def reusable_splits(
    stored: StoredPass | None, source: str, files: dict[str, list[list]], where: str, settings: str
) -> dict:
    """The stored record's splits this load takes as they are: {role: its stored entry}; raises (on_change
    `refuse`) when a split's files, or the source's other settings, changed. A `keep` load takes the stored
    training split whatever its files now."""
    record = stored.of(source) if stored is not None else None
    if stored is None or record is None:
        return {}
    if record.get("settings", settings) != settings:
        if stored.on_change == "refuse":
            raise DataError(
                f"--resume: the settings of {where} changed since the run started (columns, labels, fractions, "
                "split_by, …); the run's statistics and its position in the data are of the old settings. Resume "
                "with the run's own config.yaml, or pass --allow-data-change to read the files again"
            )
        return {}
    out = {}
    for role, now in files.items():
        entry = record.get("splits", {}).get(role)
        change = difference(entry["files"], now) if entry is not None else "a new split"
        if not change or (role == "train" and entry is not None and stored.on_change == "keep"):
            out[role] = entry
        elif stored.on_change == "refuse":
            raise DataError(
                f"--resume: the {role} files of {where} changed since the run started ({change}); the run's "
                "statistics and its position in the data are of the old files. Restore them, or pass "
                "--allow-data-change to read the changed files again (the resumed run then sees other batches "
                "than an uninterrupted one would)"
            )
    return out


def seeded_files(paths: list[str], seed, shard, read_file, cycle_length: int) -> tf.data.Dataset:
    """One epoch of a streamed source's training files: their order shuffled with the epoch's `seed` (not again when
    a short file shard repeats it), shard k of n keeping files k, k + n, … of that order (`shard` (k, n) or None),
    each file read by `read_file(path)`, up to `cycle_length` of them interleaved."""
    order = tf.data.Dataset.from_tensor_slices(paths).shuffle(len(paths), seed=seed, reshuffle_each_iteration=False)
    if shard is not None:
        order = order.shard(shard[1], shard[0])
    # A sequential interleave: on 2 cores a parallel one (or num_parallel_reads) read 2.5-7x fewer records/s
    # (benchmarks/RESULTS.md#streaming); the shuffle buffer mixes the files more than the cycle does.
    per_shard = len(paths) // (shard[1] if shard else 1)
    return order.interleave(read_file, cycle_length=max(1, min(cycle_length, per_shard)))


class PassProgress:
    """What a streamed source's pass says while it reads: a line every `EVERY` seconds (files done, rows, rows/s),
    and one at the end (with how many rows the statistics came from, under `max_rows`)."""

    EVERY = 10.0

    def __init__(self, echo: Callable[[str], None] | None, where: str, files: int):
        self.echo, self.where, self.files = echo, where, files
        self.rows = self.done = 0
        self.started = self.last = time.perf_counter()

    def add(self, rows: int) -> None:
        self.rows += rows
        now = time.perf_counter()
        if self.echo is not None and now - self.last >= self.EVERY:
            rate = self.rows / max(now - self.started, 1e-9)
            self.echo(
                f"{self.where}: pass over the files: {self.done}/{self.files} files, {self.rows:,} rows ({rate:,.0f}/s)"
            )
            self.last = now

    def file_done(self) -> None:
        self.done += 1

    def end(self, gathered: int | None, max_rows: int | None) -> None:
        if self.echo is None:
            return
        seconds = time.perf_counter() - self.started
        line = f"{self.where}: one pass over {self.files} file(s), {self.rows:,} rows in {seconds:.1f} s"
        if max_rows is not None and gathered is not None:
            line += f"; training statistics from the first {gathered:,} training rows (max_rows {max_rows:,})"
        self.echo(line)
