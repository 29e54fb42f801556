"""Users' own delimited text files (`csv`, `tsv`): text columns, numeric columns and label columns named in the
config.

- Text columns become text inputs (strings; the model's text stem builds its vocabulary from the training split).
- Numeric columns become one numeric input of shape [columns] (`numeric_feature`, default `numeric`). An empty
  cell or a `missing` token is a missing value: the model imputes the training mean and, for a column with missing
  values, adds a missing-indicator. `log1p` columns are read as sign(x)·log(1 + |x|); `buckets: {column: N}` also
  makes a column a categorical input `<column>_bucket` (its quantile bucket among N of the training split).
- Categorical columns become one categorical input each (strings, stripped; the model maps them to ids with a
  vocabulary from the training split or a hash, see moe_tf.data.categorical). A cell equal to one of `missing`
  is missing: its own id.
- `aliases` rewrite cells of a column before anything else reads them (e.g. a test file's `>50K.` as `>50K`).
- Label columns: integers are class ids, decimals are regression targets, anything else is a class name (mapped to
  ids by `classes` when declared, else by the sorted names of the training split; the names travel with the model
  and its export). An empty cell is a missing label.
- Per-example sample weights per label from a column (`weights`).

Splits: one file (`path`) is split by `eval_fraction` / `test_fraction`, seeded; or per-split files (`train`, and
optionally `eval` and `test`; a missing one is cut from the training file by its fraction).
"""

from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from moe_tf.config.base import NAME_PATTERN, StrictModel, check_identifiers, check_label_keys
from moe_tf.data.base import WEIGHT_SUFFIX, DataSource, FeatureSpec, LabelInfo, from_arrays, split_arrays
from moe_tf.data.categorical import CategoricalColumn
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS


class DelimitedConfig(StrictModel):
    path: str | None = Field(None, min_length=1, description="one file, split by eval_fraction and test_fraction")
    train: str | None = Field(None, min_length=1, description="the training file (instead of `path`)")
    eval: str | None = Field(None, min_length=1)
    test: str | None = Field(None, min_length=1)
    header: bool = True
    columns: list[str] | None = Field(None, min_length=1, description="column names of header-less files")
    text: list[str] | dict[str, str] = Field(
        default_factory=list, description="text columns; {input name: column} renames"
    )
    numeric: list[str] = Field(default_factory=list, description="numeric columns, fed as one input")
    categorical: list[str] | dict[str, str | CategoricalColumn] = Field(
        default_factory=list,
        description="categorical (ID) columns, one input each; {input name: column, or its options}",
    )
    missing: list[str] = Field(
        default_factory=lambda: [""], description="cells that mean missing (e.g. '?', 'NA'; an empty cell always does)"
    )
    aliases: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="{column: {cell: what it reads as}}, applied before anything else"
    )
    numeric_feature: str = Field("numeric", pattern=NAME_PATTERN)
    buckets: dict[str, int] = Field(
        default_factory=dict,
        description="{numeric column: N}: also a categorical input `<column>_bucket`, its quantile bucket of N",
    )
    log1p: list[str] = Field(
        default_factory=list,
        description="numeric columns the model reads as sign(x)·log(1 + |x|) (heavy-tailed counts, amounts)",
    )
    labels: list[str] = Field(..., min_length=1)
    classes: dict[str, list[str]] = Field(default_factory=dict, description="declared class names per label")
    weights: dict[str, str] = Field(default_factory=dict, description="label → its sample-weight column")
    quoting: Literal["auto", "minimal", "none"] = Field("auto", description="auto: csv minimal, tsv none")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0)
    limit: int | None = Field(None, ge=1, description="read only the first N rows of each file (quick trials)")
    token_dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="training batches only: each token of this "
        "source's texts is deleted with this chance (word dropout)",
    )

    @field_validator("labels")
    @classmethod
    def _labels(cls, v):
        return check_identifiers(v, "label")

    @model_validator(mode="after")
    def _check(self):
        if (self.path is None) == (self.train is None):
            raise ValueError(
                "give either `path` (one file, split by fractions) or `train` (with optional `eval` and `test` files)"
            )
        if self.path is not None and (self.eval or self.test):
            raise ValueError("`eval` and `test` files go with `train`, not with `path`")
        if not self.text and not self.numeric and not self.categorical and not self.buckets:
            raise ValueError("name at least one `text`, `numeric` or `categorical` column")
        if self.token_dropout and not self.text:
            raise ValueError(f"token_dropout={self.token_dropout} needs a `text` column to drop words from")
        check_identifiers(list(self.text_columns()), "text input")
        check_identifiers(list(self.categorical_columns()), "categorical input")
        for c, n in self.buckets.items():
            if n < 2:
                raise ValueError(f"buckets.{c}: expected at least 2 buckets, got {n}")
        for i, c in enumerate(self.log1p):
            if c not in self.numeric:
                raise ValueError(f"log1p[{i}]: {c!r} is not one of the numeric columns ({', '.join(self.numeric)})")
        inputs = [*self.text_columns(), *self.categorical_columns(), *([self.numeric_feature] if self.numeric else [])]
        inputs += [f"{c}_bucket" for c in self.buckets]
        twice = sorted({name for name in inputs if inputs.count(name) > 1})
        if twice:
            raise ValueError(f"input {twice[0]!r} is named twice (text, categorical or numeric_feature)")
        check_label_keys(self.classes, self.labels, "classes")
        check_label_keys(self.weights, self.labels, "weights")
        for label, names in self.classes.items():
            if len(set(names)) != len(names) or len(names) < 1:
                raise ValueError(f"classes.{label}: expected distinct class names, got {names}")
        return self

    def text_columns(self) -> dict[str, str]:
        """{input name: column}."""
        return dict(self.text) if isinstance(self.text, dict) else {c: c for c in self.text}

    def categorical_columns(self) -> dict[str, CategoricalColumn]:
        """{input name: its options (with the column it reads)}."""
        if isinstance(self.categorical, list):
            return {c: CategoricalColumn(column=c) for c in self.categorical}
        out = {}
        for name, v in self.categorical.items():
            v = CategoricalColumn(column=v) if isinstance(v, str) else v
            out[name] = v if v.column else v.model_copy(update={"column": name})
        return out


def read_utf8(path: str) -> str:
    """The file's text (a UTF-8 byte-order mark is dropped); a DataError names the line of the first byte that is
    not UTF-8."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise DataError(
            f"{path}, line {line}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start}); "
            "save the file as UTF-8"
        ) from None


@dataclass
class _Table:
    """One file's cells by column, with the line number of each row (for messages)."""

    path: str
    columns: dict[str, list[str]]
    lines: list[int]

    def __len__(self):
        return len(self.lines)


class DelimitedSource(DataSource):
    delimiter = ","

    def load(self):
        cfg = self.config
        where = f"data.sources.{self.name}"
        files = {"train": cfg.path or cfg.train, "eval": cfg.eval, "test": cfg.test}
        tables = {
            role: self._read(path, f"{where}.{'path' if cfg.path else role}") for role, path in files.items() if path
        }
        first = tables["train"]
        kinds = {label: self._label_info(label, tables) for label in cfg.labels}
        label_infos = {label: info for label, (info, _) in kinds.items()}
        arrays = {role: self._arrays(t, kinds) for role, t in tables.items()}
        fractions = {}
        if "eval" not in tables and cfg.eval_fraction > 0:
            fractions["eval"] = cfg.eval_fraction
        if "test" not in tables and cfg.test_fraction > 0:
            fractions["test"] = cfg.test_fraction
        if fractions:
            if sum(fractions.values()) >= 1.0:
                raise DataError(
                    f"{where}: eval_fraction + test_fraction must leave examples for training, "
                    f"got {' + '.join(str(v) for v in fractions.values())}"
                )
            fractions["train"] = 0.0
            arrays.update(split_arrays(*arrays["train"], fractions, self.seed))
        for role in ("train", "eval", "test"):
            if role in arrays and not len(next(iter(arrays[role][1].values()))):
                if role == "train":
                    raise DataError(f"{first.path}: no training rows")
                del arrays[role]
        specs = {name: FeatureSpec("string", (), "text") for name in cfg.text_columns()}
        for name, column in cfg.categorical_columns().items():
            options = {**column.options(cfg.missing), "column": column.column}
            specs[name] = FeatureSpec("string", (), "categorical", options)
        if cfg.numeric:
            options = {"columns": list(cfg.numeric)}  # `moe-tf predict` assembles the input from these columns
            if cfg.log1p:
                options["log1p"] = [c in cfg.log1p for c in cfg.numeric]
            gaps = np.zeros(len(cfg.numeric), bool)  # columns with a missing cell in some file
            for x, _ in arrays.values():
                gaps |= np.isnan(x[cfg.numeric_feature]).any(axis=0)
            if gaps.any():
                options["nullable"] = gaps.tolist()
            specs[cfg.numeric_feature] = FeatureSpec("float32", (len(cfg.numeric),), "numeric", options)
        for column, n in cfg.buckets.items():
            specs[f"{column}_bucket"] = FeatureSpec("float32", (), "categorical", {"buckets": n, "column": column})
        infos = dict(label_infos)
        for label in cfg.weights:
            infos[label + WEIGHT_SUFFIX] = LabelInfo(1, [], kind="weight")
        data = from_arrays(arrays, infos, specs)
        data.sample_weights = {label: label + WEIGHT_SUFFIX for label in cfg.weights}
        return data

    # ---- reading --------------------------------------------------------------------------------------------

    def _read(self, path: str, field: str) -> _Table:
        cfg = self.config
        if not os.path.isfile(path):
            raise DataError(f"file not found: {path} ({field})")
        text = read_utf8(path)
        quoting = cfg.quoting if cfg.quoting != "auto" else ("none" if self.delimiter == "\t" else "minimal")
        reader = csv.reader(
            text.splitlines(),
            delimiter=self.delimiter,
            quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL,
            strict=True,
        )
        rows, lines = [], []
        try:
            for row in reader:
                if not row or row == [""]:
                    continue  # blank line
                if cfg.limit is not None and len(rows) > cfg.limit - (0 if cfg.header else 1):
                    break
                rows.append(row)
                lines.append(reader.line_num)
        except csv.Error as e:
            raise DataError(f"{path}, line {reader.line_num}: {e}") from None
        if cfg.header:
            if not rows:
                raise DataError(f"{path}: empty file (expected a header row)")
            names, rows, lines = [c.strip() for c in rows[0]], rows[1:], lines[1:]
            if cfg.columns is not None:
                names = list(cfg.columns)
        else:
            if cfg.columns is None:
                raise DataError(f"{path}: `header: false` needs `columns:` (the name of each column, in order)")
            names = list(cfg.columns)
        for row, line in zip(rows, lines):
            if len(row) != len(names):
                raise DataError(
                    f"{path}, line {line}: {len(row)} cells, expected {len(names)} "
                    f"({', '.join(names)}); a ragged row, or a delimiter inside an unquoted field"
                )
        categorical = [c.column for c in cfg.categorical_columns().values()]
        wanted = [*cfg.text_columns().values(), *categorical, *cfg.numeric, *cfg.labels, *cfg.weights.values()]
        wanted += [c for c in cfg.buckets if c not in wanted]
        missing = [c for c in wanted if c not in names]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r} ({field}); the columns are: {', '.join(names)}")
        unknown = [c for c in cfg.aliases if c not in names]
        if unknown:
            raise DataError(
                f"{path}: no column {unknown[0]!r} (data.sources.{self.name}.aliases); "
                f"the columns are: {', '.join(names)}"
            )
        index = {c: names.index(c) for c in wanted}
        columns = {c: [row[i] for row in rows] for c, i in index.items()}
        for c, table in cfg.aliases.items():
            if c in columns:
                columns[c] = [table.get(cell.strip(), cell) for cell in columns[c]]
        return _Table(path, columns, lines)

    # ---- columns → arrays -----------------------------------------------------------------------------------

    def _label_info(self, label: str, tables: dict[str, _Table]) -> tuple[LabelInfo, str]:
        """The classes of a label column and how its cells read: `declared` or `names` (class names, declared or
        the sorted names of the training file), `ids` (integers) or `value` (regression targets)."""
        cfg = self.config
        if label in cfg.classes:
            return LabelInfo(len(cfg.classes[label]), list(cfg.classes[label])), "declared"
        cells = [c.strip() for t in tables.values() for c in t.columns[label] if c.strip()]
        if cells and all(_parses(c, int) for c in cells):
            num_classes = max(max(int(c) for c in cells) + 1, 2)
            return LabelInfo(num_classes, [str(i) for i in range(num_classes)]), "ids"
        if cells and all(_parses(c, float) for c in cells):
            return LabelInfo(1, [label], kind="value"), "value"
        names = sorted({c.strip() for c in tables["train"].columns[label] if c.strip()})
        return LabelInfo(max(len(names), 1), names or [""]), "names"

    def _arrays(self, table: _Table, labels: dict[str, tuple[LabelInfo, str]]):
        cfg = self.config
        features = {name: np.array(table.columns[col], dtype=object) for name, col in cfg.text_columns().items()}
        for name, column in cfg.categorical_columns().items():
            features[name] = np.array([c.strip() for c in table.columns[column.column]], dtype=object)
        if cfg.numeric:
            features[cfg.numeric_feature] = np.stack(
                [self._numbers(table, c, "feature", missing=True) for c in cfg.numeric], axis=1
            ).astype(np.float32)
        for column in cfg.buckets:
            features[f"{column}_bucket"] = self._numbers(table, column, "feature", missing=True)
        out = {}
        for label, (info, mode) in labels.items():
            cells = [c.strip() for c in table.columns[label]]
            if mode == "value":
                out[label] = np.array([float(c) if c else np.nan for c in cells], np.float32)
                bad = np.isinf(out[label])
                if bad.any():
                    raise DataError(
                        f"{table.path}, line {table.lines[int(np.argmax(bad))]}: label {label!r} is "
                        "infinite (an empty cell marks a missing target)"
                    )
            elif mode in ("declared", "names"):
                ids = {name: i for i, name in enumerate(info.class_names)}
                values = []
                for c, line in zip(cells, table.lines):
                    if c and c not in ids:
                        declared = (
                            f"the declared classes (data.sources.{self.name}.classes.{label})"
                            if mode == "declared"
                            else "the classes of the training file"
                        )
                        raise DataError(
                            f"{table.path}, line {line}: label {label!r} is {c!r}, which is not one of "
                            f"{declared} ({', '.join(info.class_names)})"
                        )
                    values.append(ids[c] if c else -1)
                out[label] = np.array(values, np.int64)
            else:
                out[label] = np.array([int(c) if c else -1 for c in cells], np.int64)
                below = out[label] < -1
                if below.any():
                    raise DataError(
                        f"{table.path}, line {table.lines[int(np.argmax(below))]}: label {label!r} is "
                        f"{int(out[label][below][0])}; class ids are >= 0 (an empty cell is missing)"
                    )
        for label, column in cfg.weights.items():
            w = self._numbers(table, column, "sample weight")
            if (w < 0).any():
                raise DataError(
                    f"{table.path}, line {table.lines[int(np.argmax(w < 0))]}: sample weight "
                    f"{column!r} is negative ({float(w[w < 0][0])})"
                )
            out[label + WEIGHT_SUFFIX] = w
        return features, out

    def _numbers(self, table: _Table, column: str, what: str, missing: bool = False) -> np.ndarray:
        """A column's numbers; with `missing`, an empty cell or one of the source's `missing` tokens is NaN (the
        model imputes it)."""
        values = []
        tokens = {t.strip() for t in self.config.missing} | {""}
        for cell, line in zip(table.columns[column], table.lines):
            if missing and cell.strip() in tokens:
                values.append(np.nan)
                continue
            if not cell.strip():
                raise DataError(f"{table.path}, line {line}: {what} {column!r} is empty; {what}s cannot be missing")
            try:
                v = float(cell)
            except ValueError:
                raise DataError(f"{table.path}, line {line}: {what} {column!r} is {cell!r}, not a number") from None
            if missing and math.isnan(v):
                values.append(np.nan)
                continue
            if not math.isfinite(v):
                cannot = "infinite" if missing else "missing, NaN or infinite"
                raise DataError(
                    f"{table.path}, line {line}: {what} {column!r} is {cell.strip() or 'empty'}; "
                    f"{what}s cannot be {cannot}"
                )
            values.append(v)
        return np.array(values, np.float32)


def _parses(cell: str, kind) -> bool:
    """Whether `kind(cell)` (int or float) accepts the cell."""
    try:
        kind(cell)
        return True
    except ValueError:
        return False


@DATASETS.register("csv")
class CsvSource(DelimitedSource):
    """Comma-separated values (RFC 4180 quoting)."""

    delimiter = ","

    class Config(DelimitedConfig):
        type: Literal["csv"] = "csv"


@DATASETS.register("tsv")
class TsvSource(DelimitedSource):
    """Tab-separated values (no quoting by default: quotes are text)."""

    delimiter = "\t"

    class Config(DelimitedConfig):
        type: Literal["tsv"] = "tsv"
