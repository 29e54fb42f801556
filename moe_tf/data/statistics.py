"""What the model needs to know of the training split, gathered batch by batch (in-memory arrays in one go, streamed
sources in the one pass they make over their files): numeric moments and 0/1-indicator masks, categorical value counts,
and values to place bucket boundaries at.

Bucket boundaries come from a uniform sample of at most `SAMPLE_SIZE` values per feature (reservoir sampling,
seeded): exact quantiles on a training split up to that size, sample quantiles beyond it.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from moe_tf.data.base import FeatureSpec

SAMPLE_SIZE = 200_000


class Moments:
    """Count, sum, sum of squares (float64) and the 0/1-indicator mask of a numeric feature, per element; elements
    the model reads through log1p are counted transformed; NaN (missing) values are left out."""

    def __init__(self, spec: FeatureSpec):
        shape = spec.shape
        self.log1p = spec.options.get("log1p")
        self.count, self.total, self.squares = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        self.indicator = np.ones(shape, bool)

    def add(self, chunk) -> None:
        chunk = np.asarray(chunk, np.float64)
        if self.log1p:  # the model standardises the transformed values
            chunk = np.where(self.log1p, np.sign(chunk) * np.log1p(np.abs(chunk)), chunk)
        present = ~np.isnan(chunk)  # missing values are imputed, not counted
        self.count += present.sum(axis=0)
        self.total += np.where(present, chunk, 0.0).sum(axis=0)
        self.squares += np.where(present, np.square(chunk), 0.0).sum(axis=0)
        self.indicator &= ((chunk == 0) | (chunk == 1) | ~present).all(axis=0)

    def merge(self, other: Moments) -> None:
        self.count += other.count
        self.total += other.total
        self.squares += other.squares
        self.indicator &= other.indicator

    def to_record(self) -> dict:
        return {k: getattr(self, k).tolist() for k in ("count", "total", "squares", "indicator")}

    def load_record(self, record: dict) -> None:
        for k in ("count", "total", "squares"):
            setattr(self, k, np.asarray(record[k], np.float64).reshape(self.count.shape))
        self.indicator = np.asarray(record["indicator"], bool).reshape(self.count.shape)

    def result(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean, variance, indicator mask)."""
        mean = self.total / np.maximum(self.count, 1)
        variance = np.maximum(self.squares / np.maximum(self.count, 1) - np.square(mean), 0.0)
        return mean, variance, self.indicator


def count_values(chunk, options: dict) -> Counter:
    """How often each value (as a string) occurs in a chunk of a categorical column; a multi-valued column counts each
    of its values (up to `max_length` per cell, blanks left out)."""
    separator = options.get("separator")
    values = (v.decode() if isinstance(v, bytes) else str(v) for v in np.ravel(chunk))
    if separator:
        values = (t.strip() for v in values for t in v.split(separator)[: options.get("max_length", 16)])
        values = (t for t in values if t)
    return Counter(values)


class Reservoir:
    """A uniform sample of at most `size` of the values seen (seeded, so the same data gives the same sample)."""

    def __init__(self, size: int = SAMPLE_SIZE, seed: int = 0):
        self.size, self.seen = size, 0
        self.values = np.empty(0)
        self.rng = np.random.default_rng(seed)

    def add(self, chunk) -> None:
        chunk = np.asarray(chunk, np.float64).reshape(-1)
        room = max(self.size - len(self.values), 0)
        self.values = np.concatenate([self.values, chunk[:room]])
        rest = chunk[room:]
        if len(rest):
            index = self.seen + room + np.arange(len(rest))  # each value's position in the stream
            slots = (self.rng.random(len(rest)) * (index + 1)).astype(np.int64)
            keep = slots < self.size
            self.values[slots[keep]] = rest[keep]
        self.seen += len(chunk)

    def merge(self, other: Reservoir) -> None:
        """Self becomes a uniform sample of both streams: how many of its values come from each side is drawn
        hypergeometrically (as a sample of the two streams together would split), then those values are drawn
        from each side's sample."""
        total = self.seen + other.seen
        keep = min(self.size, total)
        if max(self.seen, other.seen) < 10**9:  # numpy's hypergeometric takes counts below 10^9
            mine = int(self.rng.hypergeometric(self.seen, other.seen, keep))  # 0 or `keep` when one side is empty
        else:  # beyond, drawing `keep` of billions without replacement is drawing them with it
            mine = int(self.rng.binomial(keep, self.seen / total))
        ours = self.rng.choice(self.values, mine, replace=False) if mine else np.empty(0)
        theirs = self.rng.choice(other.values, keep - mine, replace=False) if keep - mine else np.empty(0)
        self.values = np.concatenate([ours, theirs])
        self.seen = total


class SourceStatistics:
    """A streamed source's training statistics, added batch by batch during its pass over the files."""

    def __init__(self, features: dict[str, FeatureSpec]):
        self.features = features
        self.moments = {f: Moments(s) for f, s in features.items() if s.modality == "numeric"}
        self.counts: dict[str, Counter] = {
            f: Counter()
            for f, s in features.items()
            if s.modality == "categorical" and not s.options.get("hash_buckets") and not s.options.get("buckets")
        }
        self.samples = {f: Reservoir() for f, s in features.items() if s.options.get("buckets")}
        self.options = {f: s.options for f, s in features.items()}
        self.rows = 0

    def empty(self) -> SourceStatistics:
        """New statistics of the same features (one file's, merged once the file has read whole)."""
        return SourceStatistics(self.features)

    def merge(self, other: SourceStatistics) -> None:
        for f, moments in self.moments.items():
            moments.merge(other.moments[f])
        for f, counts in self.counts.items():
            counts.update(other.counts[f])
        for f, sample in self.samples.items():
            sample.merge(other.samples[f])
        self.rows += other.rows

    def to_record(self) -> dict:
        """What the pass gathered, as JSON (kept in the run directory: a resumed or restored run reads it instead of
        passing over the files again)."""
        return {
            "rows": self.rows,
            "moments": {f: m.to_record() for f, m in self.moments.items()},
            "counts": {f: dict(c) for f, c in self.counts.items()},
            "samples": {f: {"seen": s.seen, "values": s.values.tolist()} for f, s in self.samples.items()},
        }

    def from_record(self, record: dict) -> SourceStatistics | None:
        """New statistics of the same features holding `record` (`to_record`'s), or None when the record is of
        other features (a changed config: the pass is made again)."""
        out = self.empty()
        try:
            if set(record["moments"]) != set(out.moments) or set(record["counts"]) != set(out.counts):
                return None
            if set(record["samples"]) != set(out.samples):
                return None
            for f, m in out.moments.items():
                m.load_record(record["moments"][f])
            for f in out.counts:
                out.counts[f] = Counter(record["counts"][f])
            for f, sample in out.samples.items():
                sample.seen, sample.values = (
                    int(record["samples"][f]["seen"]),
                    np.asarray(record["samples"][f]["values"]),
                )
            out.rows = int(record["rows"])
        except (KeyError, TypeError, ValueError):
            return None
        return out

    def add(self, x: dict) -> None:
        for f, moments in self.moments.items():
            moments.add(x[f])
        for f, counts in self.counts.items():
            counts.update(count_values(x[f], self.options[f]))
        for f, sample in self.samples.items():
            sample.add(x[f])
        self.rows += len(next(iter(x.values()))) if x else 0
