"""The training statistics a streamed pass gathers: the reservoir is a uniform, seeded sample that merges exactly
(also at counts numpy's hypergeometric refuses), and the statistics survive their JSON record."""

from __future__ import annotations

import json

import numpy as np

from moe_tf.data.base import FeatureSpec
from moe_tf.data.statistics import Reservoir, SourceStatistics


def fill(reservoir: Reservoir, values: np.ndarray, chunk=777) -> Reservoir:
    for start in range(0, len(values), chunk):
        reservoir.add(values[start : start + chunk])
    return reservoir


def test_the_reservoir_is_a_seeded_uniform_sample():
    stream = np.arange(100_000, dtype=float)
    a, b = fill(Reservoir(1000, seed=3), stream), fill(Reservoir(1000, seed=3), stream)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.seen == 100_000 and len(a.values) == len(set(a.values)) == 1000
    assert abs(a.values.mean() - 50_000) < 4 * 28_868 / np.sqrt(1000)  # 4 standard errors
    assert abs((a.values < 10_000).mean() - 0.1) < 0.04  # the head of the stream is not favoured
    small = fill(Reservoir(1000), np.arange(12.0))
    np.testing.assert_array_equal(np.sort(small.values), np.arange(12.0))  # below its size: every value


def test_merged_reservoirs_sample_both_streams_in_proportion():
    a = fill(Reservoir(1000, seed=1), np.arange(60_000, dtype=float))
    b = fill(Reservoir(1000, seed=2), np.arange(60_000, 100_000, dtype=float))
    a.merge(b)
    assert a.seen == 100_000 and len(a.values) == 1000
    assert abs((a.values >= 60_000).mean() - 0.4) < 0.06  # ~4 standard errors of a 1,000-draw proportion
    few = fill(Reservoir(100), np.arange(5.0))
    few.merge(fill(Reservoir(100), np.arange(5.0, 12.0)))
    np.testing.assert_array_equal(np.sort(few.values), np.arange(12.0))
    huge, other = Reservoir(1000, seed=4), Reservoir(1000, seed=5)
    huge.values, huge.seen = np.zeros(1000), 2 * 10**9  # beyond numpy's hypergeometric
    other.values, other.seen = np.ones(1000), 3 * 10**9
    huge.merge(other)
    assert huge.seen == 5 * 10**9 and len(huge.values) == 1000 and abs(huge.values.mean() - 0.6) < 0.07


def test_statistics_survive_their_record():
    features = {
        "x": FeatureSpec("float32", (3,), "numeric", {"log1p": [False, True, False]}),
        "city": FeatureSpec("string", (), "categorical", {}),
        "age_bucket": FeatureSpec("float32", (), "categorical", {"buckets": 4}),
    }
    stats = SourceStatistics(features)
    rng = np.random.default_rng(0)
    stats.add(
        {
            "x": rng.normal(size=(50, 3)),
            "city": np.array(["a", "b", "a"] * 16 + ["c", "c"], dtype=object),
            "age_bucket": rng.uniform(18, 80, 50),
        }
    )
    back = stats.empty().from_record(json.loads(json.dumps(stats.to_record())))
    assert back is not None and back.rows == 50 and back.counts["city"] == stats.counts["city"]
    for a, b in zip(back.moments["x"].result(), stats.moments["x"].result()):
        np.testing.assert_allclose(a, b)
    np.testing.assert_array_equal(back.samples["age_bucket"].values, stats.samples["age_bucket"].values)
    other = SourceStatistics({"x": features["x"]})
    assert other.from_record(stats.to_record()) is None  # of other features: the pass is made again
