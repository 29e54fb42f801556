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
import zlib
from collections.abc import Iterator
from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from moe_tf.config.base import NAME_PATTERN, StrictModel, check_identifiers, check_label_keys
from moe_tf.data.base import WEIGHT_SUFFIX, DataSource, FeatureSpec, LabelInfo, from_arrays, split_arrays
from moe_tf.data.categorical import CategoricalColumn
from moe_tf.data.chunked import CHUNK_ROWS, load_streamed, open_lines
from moe_tf.data.table import ROLES, LabelCells, Table, unknown_class
from moe_tf.errors import DataError
from moe_tf.registry import DATASETS


class DelimitedConfig(StrictModel):
    path: str | list[str] | None = Field(
        None, description="one file, split by eval_fraction and test_fraction (streamed: globs of files)"
    )
    train: str | list[str] | None = Field(
        None, description="the training file, instead of `path` (streamed: globs of files)"
    )
    eval: str | list[str] | None = Field(
        None, description="the eval file, with `train` (default: cut from the training file by `eval_fraction`)"
    )
    test: str | list[str] | None = Field(
        None, description="the test file, with `train` (default: cut from the training file by `test_fraction`)"
    )
    stream: bool = Field(
        False, description="read the files in chunks each epoch instead of loading them (data larger than memory)"
    )
    split_by: str | None = Field(
        None,
        description="a key column: each row's split by a hash of its key (eval_fraction, test_fraction), so a key's "
        "rows stay in one split; needed to split a streamed `path`",
    )
    skip_corrupt: bool = Field(
        False, description="streamed: leave out (and name) unreadable files (a corrupt Parquet file or *.gz)"
    )
    max_rows: int | None = Field(
        None,
        ge=1,
        description="streamed: the training statistics from the first files up to this many training rows (the "
        "later files are still read, to count and check them)",
    )
    header: bool = Field(True, description="the first line names the columns")
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
    numeric_feature: str = Field(
        "numeric", pattern=NAME_PATTERN, description="name of the one numeric input the `numeric` columns form"
    )
    buckets: dict[str, int] = Field(
        default_factory=dict,
        description="{numeric column: N}: also a categorical input `<column>_bucket`, its quantile bucket of N",
    )
    log1p: list[str] = Field(
        default_factory=list,
        description="numeric columns the model reads as sign(x)·log(1 + |x|) (heavy-tailed counts, amounts)",
    )
    labels: list[str] = Field(
        ...,
        min_length=1,
        description="label columns: integers are class ids, decimals regression targets, anything else class "
        "names; an empty cell is a missing label",
    )
    classes: dict[str, list[str]] = Field(default_factory=dict, description="declared class names per label")
    weights: dict[str, str] = Field(default_factory=dict, description="label → its sample-weight column")
    quoting: Literal["auto", "minimal", "none"] = Field("auto", description="auto: csv minimal, tsv none")
    eval_fraction: float = Field(0.1, ge=0.0, lt=1.0, description="share of the rows in the eval split")
    test_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="share of the rows in the test split")
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
        for role in ("path", "train", "eval", "test"):
            value = getattr(self, role)
            if not self.stream and value is not None and not isinstance(value, str):
                raise ValueError(f"{role}: one file (a list of files or globs needs `stream: true`)")
            if value is not None and not all(value if isinstance(value, list) else [value]):
                raise ValueError(f"{role}: an empty path")
        cut = [r for r in ("eval", "test") if getattr(self, r) is None and getattr(self, f"{r}_fraction") > 0]
        if self.stream and cut and self.split_by is None:
            raise ValueError(
                f"a streamed source cuts its {' and '.join(cut)} split from the training files by `split_by` (a key "
                f"column whose hash picks each row's split): name one, give {' and '.join(f'`{r}`' for r in cut)} "
                f"files, or set {' and '.join(f'{r}_fraction' for r in cut)} to 0"
            )
        if self.max_rows is not None and not self.stream:
            raise ValueError("max_rows caps a streamed source's pass; an in-memory file's statistics use every row")
        if self.stream and self.limit is not None:
            raise ValueError("`limit` reads the first rows of an in-memory file; a streamed source reads every row")
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


def hash_fraction(keys: np.ndarray) -> np.ndarray:
    """Each key's place in [0, 1): its fingerprint hash (FarmHash, the same in every process) over 2^20 buckets."""
    import tensorflow as tf

    buckets = tf.strings.to_hash_bucket_fast(tf.constant(keys.astype(str)), 1 << 20).numpy()
    return buckets / float(1 << 20)


class DelimitedSource(DataSource):
    delimiter = ","
    unit = "line"  # what a row's number counts in messages
    # What makes a streamed file unreadable (`skip_corrupt` leaves it out): a vanished file, a truncated or corrupt
    # *.gz (EOFError, BadGzipFile, zlib.error).
    unreadable: tuple[type[Exception], ...] = (OSError, EOFError, zlib.error)

    def load(self):
        cfg = self.config
        if cfg.stream:
            return load_streamed(self)
        where = f"data.sources.{self.name}"
        files = {"train": cfg.path or cfg.train, "eval": cfg.eval, "test": cfg.test}
        tables = {
            role: self._read(path, f"{where}.{'path' if cfg.path else role}") for role, path in files.items() if path
        }
        first = tables["train"]
        cells = {label: LabelCells() for label in cfg.labels}
        for role, table in tables.items():
            for label, gathered in cells.items():
                gathered.add(role, table, label)
        kinds = {label: gathered.info(label, cfg.classes.get(label), where) for label, gathered in cells.items()}
        label_infos = {label: info for label, (info, _) in kinds.items()}
        arrays = {role: self.arrays(t, kinds) for role, t in tables.items()}
        fractions = self.fractions(tables, where)
        if fractions and cfg.split_by is not None:
            arrays.update(self._hashed_splits(tables["train"], arrays["train"], fractions))
        elif fractions:
            arrays.update(split_arrays(*arrays["train"], {**fractions, "train": 0.0}, self.seed))
        for role in ("train", "eval", "test"):
            if role in arrays and not len(next(iter(arrays[role][1].values()))):
                if role == "train":
                    raise DataError(f"{first.path}: no training rows")
                del arrays[role]
        gaps = np.zeros(len(cfg.numeric), bool)  # columns with a missing cell in some file
        for x, _ in arrays.values():
            if cfg.numeric:
                gaps |= np.isnan(x[cfg.numeric_feature]).any(axis=0)
        data = from_arrays(arrays, self.label_infos(label_infos), self.specs(gaps))
        data.sample_weights = {label: label + WEIGHT_SUFFIX for label in cfg.weights}
        return data

    def fractions(self, files: dict, where: str) -> dict[str, float]:
        """{role: fraction of the training file} of the splits without files of their own."""
        cfg = self.config
        fractions = {}
        if "eval" not in files and cfg.eval_fraction > 0:
            fractions["eval"] = cfg.eval_fraction
        if "test" not in files and cfg.test_fraction > 0:
            fractions["test"] = cfg.test_fraction
        if sum(fractions.values()) >= 1.0:
            raise DataError(
                f"{where}: eval_fraction + test_fraction must leave examples for training, "
                f"got {' + '.join(str(v) for v in fractions.values())}"
            )
        return fractions

    def roles(self, table: Table) -> np.ndarray:
        """`split_by`: each row's role as 0 train, 1 eval, 2 test, from a fingerprint hash of its key cell (the
        same rows in every process and every pass, whatever the file order)."""
        cfg = self.config
        keys = np.array([str(c).strip() for c in table.columns[cfg.split_by]], dtype=object)
        where = hash_fraction(keys)
        eval_end = cfg.eval_fraction if cfg.eval is None else 0.0
        test_end = eval_end + (cfg.test_fraction if cfg.test is None else 0.0)
        return np.where(where < eval_end, 1, np.where(where < test_end, 2, 0))

    def _hashed_splits(self, table: Table, arrays, fractions: dict):
        """The training file's arrays split by `roles` into train and the roles of `fractions`."""
        roles, (x, y) = self.roles(table), arrays
        return {
            role: ({k: v[roles == i] for k, v in x.items()}, {k: v[roles == i] for k, v in y.items()})
            for i, role in enumerate(ROLES)
            if role == "train" or role in fractions
        }

    def specs(self, gaps: np.ndarray) -> dict[str, FeatureSpec]:
        """The inputs' specs; `gaps`: the numeric columns with a missing cell in some split."""
        cfg = self.config
        specs = {name: FeatureSpec("string", (), "text") for name in cfg.text_columns()}
        for name, column in cfg.categorical_columns().items():
            options = {**column.options(cfg.missing), "column": column.column}
            specs[name] = FeatureSpec("string", (), "categorical", options)
        if cfg.numeric:
            options = {"columns": list(cfg.numeric)}  # `moe-tf predict` assembles the input from these columns
            if cfg.log1p:
                options["log1p"] = [c in cfg.log1p for c in cfg.numeric]
            if gaps.any():
                options["nullable"] = [bool(g) for g in gaps]
            specs[cfg.numeric_feature] = FeatureSpec("float32", (len(cfg.numeric),), "numeric", options)
        for column, n in cfg.buckets.items():
            specs[f"{column}_bucket"] = FeatureSpec("float32", (), "categorical", {"buckets": n, "column": column})
        return specs

    def label_infos(self, infos: dict[str, LabelInfo]) -> dict[str, LabelInfo]:
        """The labels, and each sample-weight column as a label of kind `weight`."""
        out = dict(infos)
        for label in self.config.weights:
            out[label + WEIGHT_SUFFIX] = LabelInfo(1, [], kind="weight")
        return out

    # ---- reading --------------------------------------------------------------------------------------------

    def _read(self, path: str, field: str) -> Table:
        """A whole file as one table."""
        if not os.path.isfile(path):
            raise DataError(f"file not found: {path} ({field})")
        return next(self.tables(path, read_utf8(path).splitlines(), field))

    def file_tables(self, path: str, where: str) -> Iterator[Table]:
        """A streamed file's rows in tables of moe_tf.data.chunked.CHUNK_ROWS rows."""
        return self.tables(path, open_lines(path), where, CHUNK_ROWS)

    def wanted(self) -> list[str]:
        """The columns the config reads."""
        cfg = self.config
        categorical = [c.column for c in cfg.categorical_columns().values()]
        wanted = [*cfg.text_columns().values(), *categorical, *cfg.numeric, *cfg.labels, *cfg.weights.values()]
        wanted += [c for c in [*cfg.buckets, *([cfg.split_by] if cfg.split_by else [])] if c not in wanted]
        return list(dict.fromkeys(wanted))

    def check_columns(self, path: str, names: list[str], field: str) -> None:
        """Every column the config reads (and every aliased one) is in the file."""
        missing = [c for c in self.wanted() if c not in names]
        if missing:
            raise DataError(f"{path}: no column {missing[0]!r} ({field}); the columns are: {', '.join(names)}")
        unknown = [c for c in self.config.aliases if c not in names]
        if unknown:
            raise DataError(
                f"{path}: no column {unknown[0]!r} (data.sources.{self.name}.aliases); "
                f"the columns are: {', '.join(names)}"
            )

    def table(self, path: str, columns: dict, lines: list[int]) -> Table:
        """A table of the wanted columns, aliases applied."""
        for c, table in self.config.aliases.items():
            if c in columns:
                columns[c] = [table.get(str(cell).strip(), cell) for cell in columns[c]]
        return Table(path, columns, lines, self.unit)

    def tables(self, path: str, lines, field: str, chunk_rows: int | None = None) -> Iterator[Table]:
        """A delimited file's rows (`lines`: its lines, an iterable) as tables of `chunk_rows` rows (None: one
        table of every row); the columns are checked when the header is read."""
        cfg = self.config
        quoting = cfg.quoting if cfg.quoting != "auto" else ("none" if self.delimiter == "\t" else "minimal")
        reader = csv.reader(
            lines,
            delimiter=self.delimiter,
            quoting=csv.QUOTE_NONE if quoting == "none" else csv.QUOTE_MINIMAL,
            strict=True,
        )
        names: list[str] | None = None
        if not cfg.header:
            if cfg.columns is None:
                raise DataError(f"{path}: `header: false` needs `columns:` (the name of each column, in order)")
            names = list(cfg.columns)
            self.check_columns(path, names, field)
        index: dict[str, int] = {c: names.index(c) for c in self.wanted()} if names else {}
        rows, numbers, count = [], [], 0
        try:
            for row in reader:
                if not row or row == [""]:
                    continue  # blank line
                if names is None:
                    names = list(cfg.columns) if cfg.columns is not None else [c.strip() for c in row]
                    self.check_columns(path, names, field)
                    index = {c: names.index(c) for c in self.wanted()}
                    continue
                if cfg.limit is not None and count >= cfg.limit:
                    break
                if len(row) != len(names):
                    raise DataError(
                        f"{path}, line {reader.line_num}: {len(row)} cells, expected {len(names)} "
                        f"({', '.join(names)}); a ragged row, or a delimiter inside an unquoted field"
                    )
                rows.append(row)
                numbers.append(reader.line_num)
                count += 1
                if chunk_rows is not None and len(rows) == chunk_rows:
                    yield self.table(path, {c: [r[i] for r in rows] for c, i in index.items()}, numbers)
                    rows, numbers = [], []
        except csv.Error as e:
            raise DataError(f"{path}, line {reader.line_num}: {e}") from None
        if names is None:
            raise DataError(f"{path}: empty file (expected a header row)")
        if rows or chunk_rows is None:
            yield self.table(path, {c: [r[i] for r in rows] for c, i in index.items()}, numbers)

    # ---- columns → arrays -----------------------------------------------------------------------------------

    def arrays(self, table: Table, labels: dict[str, tuple[LabelInfo, str]]):
        """A table's ({input: [n, ...]}, {label: [n]}); a bad cell is an error naming its file and line."""
        cfg = self.config
        features = {
            name: np.array([str(c) for c in table.columns[col]], dtype=object)
            for name, col in cfg.text_columns().items()
        }
        for name, column in cfg.categorical_columns().items():
            features[name] = np.array([str(c).strip() for c in table.columns[column.column]], dtype=object)
        if cfg.numeric:
            features[cfg.numeric_feature] = (
                np.stack([self._numbers(table, c, "feature", missing=True) for c in cfg.numeric], axis=1)
                .astype(np.float32)
                .reshape(len(table), len(cfg.numeric))
            )
        for column in cfg.buckets:
            features[f"{column}_bucket"] = self._numbers(table, column, "feature", missing=True)
        out = {}
        for label, (info, mode) in labels.items():
            cells = [str(c).strip() for c in table.columns[label]]
            present = np.array([bool(c) for c in cells], bool)
            if mode == "value":
                out[label] = np.full(len(cells), np.nan, np.float32)
                out[label][present] = np.asarray(cells, dtype=str)[present].astype(np.float64)
                bad = np.isinf(out[label])
                if bad.any():
                    raise DataError(
                        f"{table.at(table.lines[int(np.argmax(bad))])}: label {label!r} is "
                        "infinite (an empty cell marks a missing target)"
                    )
            elif mode in ("declared", "names"):
                ids = {name: i for i, name in enumerate(info.class_names)}
                values = []
                for c, line in zip(cells, table.lines):
                    if c and c not in ids:
                        raise DataError(unknown_class(table.at(line), label, c, mode, info, self.name))
                    values.append(ids[c] if c else -1)
                out[label] = np.array(values, np.int64)
            else:
                out[label] = np.full(len(cells), -1, np.int64)
                out[label][present] = np.asarray(cells, dtype=str)[present].astype(np.int64)
                below = out[label] < -1
                if below.any():
                    raise DataError(
                        f"{table.at(table.lines[int(np.argmax(below))])}: label {label!r} is "
                        f"{int(out[label][below][0])}; class ids are >= 0 (an empty cell is missing)"
                    )
        for label, column in cfg.weights.items():
            w = self._numbers(table, column, "sample weight")
            if (w < 0).any():
                raise DataError(
                    f"{table.at(table.lines[int(np.argmax(w < 0))])}: sample weight "
                    f"{column!r} is negative ({float(w[w < 0][0])})"
                )
            out[label + WEIGHT_SUFFIX] = w
        return features, out

    def _numbers(self, table: Table, column: str, what: str, missing: bool = False) -> np.ndarray:
        """A column's numbers; with `missing`, an empty cell or one of the source's `missing` tokens is NaN (the
        model imputes it). Parsed in one numpy call; a column that does not parse is read cell by cell to name the
        first bad cell."""
        cells = table.columns[column]
        if isinstance(cells, np.ndarray) and cells.dtype.kind == "f":  # a typed (Parquet) column: NaN is null
            values = cells.astype(np.float64)
            absent = np.isnan(values)
            if missing:  # the `missing` tokens that are numbers (e.g. -999) mark missing values here too
                absent |= np.isin(values, [float(t) for t in self.config.missing if _number(t)])
                values = np.where(absent, np.nan, values)
        else:
            text = np.char.strip(np.asarray(cells, dtype=str)) if len(cells) else np.zeros(0, str)
            tokens = sorted({t.strip() for t in self.config.missing} | {""})
            absent = np.isin(text, tokens) if missing else np.zeros(len(text), bool)
            values = np.full(len(text), np.nan)
            try:
                values[~absent] = text[~absent].astype(np.float64)
            except ValueError:
                return self._numbers_one_by_one(table, column, what, missing)
            absent |= np.isnan(values)
        if absent.any() and not missing:
            return self._numbers_one_by_one(table, column, what, missing)
        if np.isinf(values).any():
            return self._numbers_one_by_one(table, column, what, missing)
        return values.astype(np.float32)

    def _numbers_one_by_one(self, table: Table, column: str, what: str, missing: bool) -> np.ndarray:
        values = []
        tokens = {t.strip() for t in self.config.missing} | {""}
        for cell, line in zip(table.columns[column], table.lines):
            cell = "" if isinstance(cell, float) and math.isnan(cell) else str(cell)
            if missing and cell.strip() in tokens:
                values.append(np.nan)
                continue
            if not cell.strip():
                raise DataError(f"{table.at(line)}: {what} {column!r} is empty; {what}s cannot be missing")
            try:
                v = float(cell)
            except ValueError:
                raise DataError(f"{table.at(line)}: {what} {column!r} is {cell!r}, not a number") from None
            if missing and math.isnan(v):
                values.append(np.nan)
                continue
            if not math.isfinite(v):
                cannot = "infinite" if missing else "missing, NaN or infinite"
                raise DataError(
                    f"{table.at(line)}: {what} {column!r} is {cell.strip() or 'empty'}; {what}s cannot be {cannot}"
                )
            values.append(v)
        return np.array(values, np.float32)


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


@DATASETS.register("csv")
class CsvSource(DelimitedSource):
    """Comma-separated values (RFC 4180 quoting)."""

    delimiter = ","

    class Config(DelimitedConfig):
        type: Literal["csv"] = Field(
            "csv",
            description="your own comma-separated files (quoted fields allowed): text, numeric and categorical "
            "columns, label columns; in memory, or streamed with `stream: true`",
        )


@DATASETS.register("tsv")
class TsvSource(DelimitedSource):
    """Tab-separated values (no quoting by default: quotes are text)."""

    delimiter = "\t"

    class Config(DelimitedConfig):
        type: Literal["tsv"] = Field(
            "tsv",
            description="your own tab-separated files (no quoting by default: quotes are text); the keys of `csv`",
        )
