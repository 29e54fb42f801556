"""Categorical (ID) columns: what a config says of each, and their vocabularies from the training split.

A categorical input's raw values are strings (CSV cells, string arrays) or integers (integer arrays); the model
maps them to ids inside itself (moe_tf.models.categorical), so the export takes the raw values. Ids:

- 0: missing (one of the source's `missing` tokens, e.g. `?` or an empty cell): its own id, not out-of-vocabulary;
- 1 … oov_buckets: values not in the vocabulary (hashed among the buckets);
- then the vocabulary, most frequent value first (ties by value), built from the training split only: values seen
  at least `min_count` times, at most `max_tokens` of them.

With `hash_buckets: N` there is no vocabulary: a value's id is 1 + its fingerprint hash mod N, the same in every
process and in the export.

A numeric column with `buckets: N` is also a categorical input (`<column>_bucket`): its id is 1 + its bucket among N
equal-count buckets of the training split (0 when missing); the boundaries are model state.

A multi-valued column (`separator`) holds several values per cell (`action|comedy`): each becomes an id as above (at
most `max_length`, in order; padding is -1), and the column's vector is the `combiner` (mean, sum, or sum / √n) of
their embeddings; an empty cell is one missing id.

Columns naming one `shared_embedding` table share one vocabulary (built from all their training values) and one
embedding table (one variable): the same ID in two columns, or in two sources, is one vector.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Literal

from pydantic import Field, model_validator

from moe_tf.config.base import NAME_PATTERN, StrictModel

MISSING_ID = 0  # the id of a missing value


class CategoricalColumn(StrictModel):
    """One categorical input: where it is read from, how values become ids, and its embedding."""

    column: str | None = Field(None, min_length=1, description="the column (or array) it reads; default: its name")
    max_tokens: int | None = Field(
        None, ge=1, description="keep at most this many values (the most frequent); the rest go to OOV"
    )
    min_count: int = Field(1, ge=1, description="values seen fewer times in the training split go to OOV")
    oov_buckets: int = Field(1, ge=1, description="ids that values outside the vocabulary are hashed among")
    hash_buckets: int | None = Field(
        None, gt=0, description="no vocabulary: ids are 1 + a stable hash of the value mod this"
    )
    embedding_dim: int | None = Field(
        None, gt=0, description="width of its embedding; default ceil(6 · ids^0.25), at most 64"
    )
    separator: str | None = Field(
        None, min_length=1, description="a multi-valued column: its values split at this (e.g. '|'), then pooled"
    )
    combiner: Literal["mean", "sum", "sqrtn"] = Field("mean", description="how a multi-valued column's vectors pool")
    max_length: int = Field(16, ge=1, description="a multi-valued column keeps its first this many values")
    shared_embedding: str | None = Field(
        None,
        pattern=NAME_PATTERN,
        description="a table name: columns naming the same table share its vocabulary and embedding",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.hash_buckets is not None and (self.max_tokens is not None or self.min_count != 1):
            raise ValueError("hash_buckets replaces the vocabulary: remove max_tokens and min_count")
        return self

    def options(self, missing: list[str]) -> dict:
        """The options a FeatureSpec carries (plain data for the model and the export's metadata)."""
        out = self.model_dump(exclude={"column"}, exclude_none=True)
        out["missing"] = list(missing)
        return out


def default_embedding_dim(ids: int) -> int:
    """ceil(6 · ids^(1/4)), capped at 64: 9 for a yes/no column, 16 for 50 values, 64 beyond ~13,000 ids."""
    return int(min(64, math.ceil(6 * max(ids, 1) ** 0.25)))


def table_of(feature: str, options: dict) -> str:
    """The embedding table a categorical feature reads: its `shared_embedding`, or its own."""
    return options.get("shared_embedding") or feature


def table_shapes(features: dict[str, dict]) -> dict[str, tuple[int, int]]:
    """{table: (rows, width)} of categorical `features` ({feature: spec with options, `table_size` set})."""
    out: dict[str, tuple[int, int]] = {}
    for f, spec in features.items():
        options = spec["options"]
        size = int(options["table_size"])
        out.setdefault(table_of(f, options), (size, int(options.get("embedding_dim") or default_embedding_dim(size))))
    return out


def vocabulary_from_counts(counts: Counter, options: dict) -> tuple[list[str], int, int]:
    """The vocabulary from {value: occurrences in the training split}: missing tokens and values seen fewer than
    `min_count` times left out, most frequent first (ties by value), at most `max_tokens`.

    Returns (tokens, values beyond `max_tokens`: distinct count, their occurrences).
    """
    missing = set(options.get("missing", []))
    kept = sorted(
        ((token, n) for token, n in counts.items() if n >= options.get("min_count", 1) and token not in missing),
        key=lambda tn: (-tn[1], tn[0]),
    )
    limit = options.get("max_tokens")
    beyond = kept[limit:] if limit is not None else []
    kept = kept[:limit] if limit is not None else kept
    return [token for token, _ in kept], len(beyond), sum(n for _, n in beyond)


def table_size(options: dict, vocabulary_size: int) -> int:
    """Rows of the embedding table: missing + OOV buckets + vocabulary, or missing + hash buckets."""
    if options.get("hash_buckets"):
        return 1 + int(options["hash_buckets"])
    if options.get("buckets"):
        return 1 + int(options["buckets"])
    return 1 + int(options.get("oov_buckets", 1)) + vocabulary_size
