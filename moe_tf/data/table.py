"""Rows of a delimited or Parquet file as a table of cells by column, and what a label column's cells say of the
label (integers, numbers or class names), gathered table by table: shared by the in-memory csv source
(moe_tf.data.delimited) and the streamed one (moe_tf.data.chunked)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from moe_tf.data.base import LabelInfo
from moe_tf.errors import DataError

ROLES = ("train", "eval", "test")  # a row's role index in `DelimitedSource.roles`


@dataclass
class Table:
    """Rows of one file, cells by column, with the line (or row) number of each row (for messages). A cell is a
    string, except in the float arrays a Parquet file's numeric columns give (NaN: missing)."""

    path: str
    columns: dict[str, list | np.ndarray]
    lines: list[int]
    unit: str = "line"

    def __len__(self):
        return len(self.lines)

    def at(self, line: int) -> str:
        """Where a row is, for a message: `path, line 12`."""
        return f"{self.path}, {self.unit} {line}"


class LabelCells:
    """What a label column's cells say of it, gathered table by table over every split: whether every cell is an
    integer, or a number; the largest and smallest integer; where the first infinite number is; and where each
    distinct cell first occurs, per split (class names; at most `CAP` distinct cells are kept)."""

    CAP = 100_000

    def __init__(self):
        self.ints = self.numbers = True
        self.any = self.capped = False
        self.max_id, self.low, self.infinite = -1, None, None
        self.first: dict[str, dict[str, str]] = {}  # role → {cell: where it first occurs}

    def add(self, role: str, table: Table, column: str) -> None:
        cells = np.array([c.strip() for c in table.columns[column]], dtype=object)
        present = cells != ""
        if not present.any():
            return
        self.any = True
        seen = self.first.setdefault(role, {})
        if not self.capped:
            for index in np.flatnonzero(present):
                if cells[index] not in seen:
                    seen[cells[index]] = table.at(table.lines[index])
            self.capped = len(seen) > self.CAP
        values = cells[present].astype(str)
        if self.ints:
            try:
                ids = values.astype(np.int64)
            except (ValueError, OverflowError):
                self.ints = False
            else:
                self.max_id = max(self.max_id, int(ids.max()))
                if self.low is None and ids.min() < -1:
                    at = int(np.argmax(ids < -1))
                    self.low = (table.at(table.lines[np.flatnonzero(present)[at]]), int(ids[at]))
        if self.numbers and not self.ints:
            try:
                numbers = values.astype(np.float64)
            except ValueError:
                self.numbers = False
            else:
                if self.infinite is None and np.isinf(numbers).any():
                    self.infinite = table.at(table.lines[np.flatnonzero(present)[int(np.argmax(np.isinf(numbers)))]])

    def info(self, label: str, declared: list[str] | None, where: str) -> tuple[LabelInfo, str]:
        """The label's classes and how its cells read: `declared` or `names` (class names, declared or the sorted
        names of the training split), `ids` (integers) or `value` (regression targets)."""
        if declared is not None:
            return LabelInfo(len(declared), list(declared)), "declared"
        if self.any and self.ints:
            num_classes = max(self.max_id + 1, 2)
            return LabelInfo(num_classes, [str(i) for i in range(num_classes)]), "ids"
        if self.any and self.numbers:
            return LabelInfo(1, [label], kind="value"), "value"
        if self.capped:
            raise DataError(
                f"{where}: label {label!r} has more than {self.CAP} distinct non-numeric values; declare its "
                f"classes ({where}.classes.{label}) if it is a class label"
            )
        names = sorted(self.first.get("train", {}))
        return LabelInfo(max(len(names), 1), names or [""]), "names"

    def check(self, label: str, info: LabelInfo, mode: str, source: str) -> None:
        """The errors `DelimitedSource.arrays` raises on a bad cell, from what was gathered (a streamed source's
        pass, which does not convert labels)."""
        if mode in ("declared", "names"):
            for seen in self.first.values():
                for cell, at in seen.items():
                    if cell not in info.class_names:
                        raise DataError(unknown_class(at, label, cell, mode, info, source))
        elif mode == "ids" and self.low is not None:
            raise DataError(
                f"{self.low[0]}: label {label!r} is {self.low[1]}; class ids are >= 0 (an empty cell is missing)"
            )
        elif mode == "value" and self.infinite is not None:
            raise DataError(f"{self.infinite}: label {label!r} is infinite (an empty cell marks a missing target)")


def unknown_class(at: str, label: str, cell: str, mode: str, info: LabelInfo, source: str) -> str:
    declared = (
        f"the declared classes (data.sources.{source}.classes.{label})"
        if mode == "declared"
        else "the classes of the training file"
    )
    return f"{at}: label {label!r} is {cell!r}, which is not one of {declared} ({', '.join(info.class_names)})"
