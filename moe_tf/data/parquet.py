"""Parquet files, streamed: read in record batches through pyarrow (never a whole file), with the column options of
the csv source (moe_tf.data.delimited) and its errors, a row named by its file and row number.

Numeric columns read as numbers (a null is a missing value, and so is a value equal to one of the source's
`missing` tokens, e.g. -999); every other column the config reads is read as text (pyarrow's cast to string: an
integer ID 17 reads as `17`, as it does in a CSV file; a float column as Python writes it, `1.0`, so a float label is
a regression target), so vocabularies and the export see the values a CSV of the same data gives.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import tensorflow as tf
from pydantic import Field, model_validator

from moe_tf.data.chunked import CHUNK_ROWS
from moe_tf.data.delimited import DelimitedConfig, DelimitedSource, Table
from moe_tf.registry import DATASETS


@DATASETS.register("parquet")
class ParquetSource(DelimitedSource):
    """Parquet files (globs per split), streamed."""

    unit = "row"
    unreadable = (pa.ArrowException, OSError)

    class Config(DelimitedConfig):
        type: Literal["parquet"] = Field(
            "parquet",
            description="Parquet files read in record batches through pyarrow; always streamed; the `csv` keys without "
            "`header`, `columns`, `quoting`, `limit`",
        )
        stream: bool = Field(True, description="always true: Parquet sources are streamed")

        @model_validator(mode="after")
        def _parquet(self):
            if not self.stream:
                raise ValueError("a parquet source is always streamed (stream: true)")
            defaults = {"header": True, "columns": None, "quoting": "auto", "limit": None}  # what a dumped config holds
            text_only = [key for key, value in defaults.items() if getattr(self, key) != value]
            if text_only:
                raise ValueError(f"{text_only[0]}: a setting of text files; a Parquet file names its own columns")
            return self

    def file_tables(self, path: str, where: str) -> Iterator[Table]:
        cfg = self.config
        handle = tf.io.gfile.GFile(path, "rb") if "://" in path else path
        file = pq.ParquetFile(handle)
        self.check_columns(path, file.schema_arrow.names, where)
        wanted = self.wanted()
        as_text = set(wanted) - set(cfg.numeric) - set(cfg.buckets) - set(cfg.weights.values())
        as_text |= {*cfg.text_columns().values(), *(c.column for c in cfg.categorical_columns().values())}
        as_text |= {*cfg.labels, *([cfg.split_by] if cfg.split_by else [])}
        row = 0
        for batch in file.iter_batches(batch_size=CHUNK_ROWS, columns=wanted):
            columns = {}
            for c in wanted:
                column = batch.column(c)
                number = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                if c not in as_text and number:
                    columns[c] = column.to_numpy(zero_copy_only=False).astype(np.float64)  # null → NaN
                elif pa.types.is_floating(column.type):  # as Python writes it (1.0, not pyarrow's 1): a target
                    values = column.to_numpy(zero_copy_only=False).astype(np.float64)
                    columns[c] = np.where(np.isnan(values), "", values.astype(str)).astype(object)
                else:
                    text = pc.cast(column, pa.string()).fill_null("")
                    columns[c] = np.asarray(text.to_numpy(zero_copy_only=False), dtype=object)
            lines = list(range(row + 1, row + batch.num_rows + 1))
            row += batch.num_rows
            yield self.table(path, columns, lines)
