"""Several sources per run: the seeded source schedule, one-source batches with missing labels for the other
sources' tasks, loss weights per labelled example, and exact resume."""

import numpy as np
import pytest

from moe_tf.config.loader import validate_config
from moe_tf.data import SOURCE_KEY, build_task_data
from moe_tf.data.sampling import source_probabilities, source_schedule
from tests.conftest import multi_dict


def test_probabilities_of_each_rule():
    np.testing.assert_allclose(source_probabilities([100, 300], "proportional"), [0.25, 0.75])
    np.testing.assert_allclose(source_probabilities([100, 300], "uniform"), [0.5, 0.5])
    np.testing.assert_allclose(source_probabilities([100, 400], "temperature", 2.0), [1 / 3, 2 / 3])  # √100 : √400


def test_schedule_follows_the_probabilities_and_its_prefix_is_stable():
    p = np.array([0.2, 0.5, 0.3])
    schedule = source_schedule(p, 40_000, seed=7)
    np.testing.assert_allclose(np.bincount(schedule) / len(schedule), p, atol=0.01)
    np.testing.assert_array_equal(source_schedule(p, 500, seed=7), schedule[:500])  # resume with other totals
    assert not np.array_equal(source_schedule(p, 500, seed=8), schedule[:500])


@pytest.fixture(scope="module")
def data(tabular_npz):
    return build_task_data(validate_config(multi_dict(tabular_npz, data={"sampling": {"type": "uniform"}})))


def test_batches_come_from_one_source_each(data):
    assert list(data.features) == ["image", "x"] and data.multi_source
    assert data.steps_per_epoch(64) == 1258 // 64 + 420 // 64  # the tab source: 600 · 0.7 train examples
    schedule = data.source_schedule(40)
    batches = list(data.train_dataset(64, 0, 40))
    assert len(batches) == 40
    for (inputs, labels, weights), source in zip(batches, schedule):
        assert set(inputs[SOURCE_KEY].numpy()) == {source}
        if source == 0:  # digits: the tabular tasks are missing, the numeric feature is zeros
            assert not inputs["x"].numpy().any()
            assert (labels["kind"].numpy() == -1).all() and np.isnan(labels["score"].numpy()).all()
            assert not weights["kind"].numpy().any()
            assert weights["digit"].numpy() == pytest.approx(np.full(64, 1 / 64))
        else:
            assert not inputs["image"].numpy().any() and (labels["digit"].numpy() == -1).all()
            for task in ("kind", "score"):  # 1/4 of each tabular label is missing
                w = weights[task].numpy()
                labelled = (labels[task].numpy() >= 0) if task == "kind" else ~np.isnan(labels[task].numpy())
                assert 30 < labelled.sum() < 64
                np.testing.assert_allclose(w, labelled / labelled.sum())
    assert 10 < sum(schedule) < 30  # uniform: about half of the steps from each source


def test_two_sources_resume_at_the_exact_batch(data):
    straight = list(data.train_dataset(64, 0, 50))
    resumed = list(data.train_dataset(64, 23, 50))
    assert len(resumed) == 27
    for (a, la, _), (b, lb, _) in zip(straight[23:], resumed):
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])
        np.testing.assert_array_equal(la["digit"], lb["digit"])


def test_eval_split_covers_every_source_in_order(data):
    batches = list(data.eval_dataset("test", 100))
    sources = [int(x[SOURCE_KEY][0]) for x, _, _ in batches]
    assert sources == [0] * 4 + [1] * 2  # 359 digits, then 120 tabular examples; a batch never mixes sources
    assert sum(len(y["digit"]) for _, y, _ in batches) == 359 + 120


def test_an_integer_column_read_as_regression_marks_missing_with_nan(tmp_path):
    np.savez(tmp_path / "i.npz", x=np.ones((20, 2), np.float32), n=np.array([3, -1] * 10))
    raw = multi_dict(tmp_path / "i.npz", data={"sources": {"tab": {"labels": ["n"]}}})
    raw["tasks"] = [{"name": "n", "dataset": "tab", "label": "n", "type": "regression"}]
    raw["data"]["sources"].pop("digits")
    data = build_task_data(validate_config(raw))
    _, labels, weights = next(iter(data.train_dataset(8, 0, 1)))
    values = labels["n"].numpy()
    assert set(values[~np.isnan(values)]) == {3.0} and np.isnan(values).sum() > 0  # -1 is missing, not a target
    assert weights["n"].numpy().sum() == pytest.approx(1.0)
