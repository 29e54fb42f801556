import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.data import build_task_data
from moe_tf.data.augment import augment_image
from moe_tf.data.base import LabelInfo, from_arrays
from moe_tf.data.pipeline import check_labels, resolve_tasks
from moe_tf.errors import ConfigError, DataError
from tests.conftest import tiny_config


def test_derived_task_through_label_map():
    data = build_task_data(tiny_config())
    digit, high = data.tasks
    assert (digit.num_classes, high.num_classes, high.kind) == (10, 2, "binary")
    images, labels = next(iter(data.eval_dataset("test", 400)))
    assert images.shape[1:] == (8, 8, 1) and images.dtype == tf.uint8
    np.testing.assert_array_equal(labels["high"].numpy(), (labels["digit"].numpy() >= 5).astype(np.int64))


def test_train_batches_are_full_and_seeded():
    data = build_task_data(tiny_config())
    a = [x.numpy() for x, _ in data.train_dataset(64, epoch=0).take(3)]
    b = [x.numpy() for x, _ in data.train_dataset(64, epoch=0).take(3)]
    c = [x.numpy() for x, _ in data.train_dataset(64, epoch=1).take(3)]
    assert all(x.shape[0] == 64 for x in a)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])  # a new order each epoch
    assert data.steps_per_epoch(64) == 1258 // 64


def _source(labels):
    x = np.zeros((len(labels), 2, 2, 1), np.uint8)
    return from_arrays({"train": (x, {"label": np.array(labels)})}, {"label": LabelInfo(3, ["a", "b", "c"])})


def test_label_out_of_range_names_task_and_value():
    config = tiny_config(tasks=[{"name": "kind", "dataset": "digits", "num_classes": 3}])
    source = _source([0, 1, 7])
    tasks = resolve_tasks(config.tasks, source)
    with pytest.raises(DataError, match=r"task 'kind': label 7 out of range \[0, 3\) in split 'train'"):
        check_labels(tasks, source)


def test_label_map_source_out_of_range_and_num_classes_too_small():
    config = tiny_config(tasks=[{"name": "kind", "dataset": "digits", "label_map": {5: 1}}])
    with pytest.raises(ConfigError, match="label_map: source label 5 is out of range"):
        resolve_tasks(config.tasks, _source([0]))
    config = tiny_config(tasks=[{"name": "kind", "dataset": "digits", "num_classes": 2}])
    with pytest.raises(ConfigError, match=r"tasks\[0\].num_classes: 'kind' has labels up to 2"):
        resolve_tasks(config.tasks, _source([0]))


def test_unmapped_labels_become_missing():
    config = tiny_config(tasks=[{"name": "kind", "dataset": "digits", "label_map": {0: 0, 1: 1}}])
    source = _source([0, 1, 2])
    tasks = resolve_tasks(config.tasks, source)
    assert tasks[0].label_table.tolist() == [0, 1, -1]
    check_labels(tasks, source)  # -1 is allowed: it is masked


def test_augmentation_keeps_shape_and_is_seeded():
    aug = tiny_config(data={"augmentation": {"flip": "horizontal", "crop_padding": 2}}).data.augmentation
    image = tf.constant(np.arange(8 * 8, dtype=np.uint8).reshape(8, 8, 1))
    seed = tf.constant([3, 4], tf.int64)
    a, b = augment_image(image, aug, seed), augment_image(image, aug, seed)
    assert a.shape == (8, 8, 1) and a.dtype == tf.uint8
    np.testing.assert_array_equal(a, b)
    others = [augment_image(image, aug, tf.constant([3, i], tf.int64)).numpy() for i in range(10)]
    assert any(not np.array_equal(a, o) for o in others)


def test_multi_epoch_pipeline_equals_epochs_read_alone():
    data = build_task_data(tiny_config(data={"augmentation": {"flip": "horizontal", "crop_padding": 1}}))
    together = [x.numpy() for x, _ in data.train_dataset(64, epoch=1, num_epochs=2)]
    alone = [x.numpy() for e in (1, 2) for x, _ in data.train_dataset(64, epoch=e)]
    assert len(together) == len(alone) == 2 * (1258 // 64)
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)


def test_epoch_order_does_not_depend_on_the_global_seed():
    # The shuffle seed of each epoch is a tensor inside the lazily generated pipeline; a global seed of 0 once made
    # tf.data compare it as a Python bool.
    data = build_task_data(tiny_config())
    orders = []
    for global_seed in (0, 123):
        keras.utils.set_random_seed(global_seed)
        orders.append([y["digit"].numpy() for _, y in data.train_dataset(64, epoch=3, num_epochs=2)])
    for a, b in zip(*orders):
        np.testing.assert_array_equal(a, b)
    first = [y["digit"].numpy() for _, y in data.train_dataset(64, epoch=3).take(1)]
    np.testing.assert_array_equal(first[0], orders[0][0])
    assert not np.array_equal(orders[0][0], orders[0][19])  # epochs 3 and 4 are shuffled differently


def test_a_pipeline_of_a_million_epochs_is_built_lazily():
    data = build_task_data(tiny_config())
    (x, y), = data.train_dataset(64, epoch=5, num_epochs=10**6).take(1)
    (x5, y5), = data.train_dataset(64, epoch=5).take(1)
    np.testing.assert_array_equal(x, x5)
    np.testing.assert_array_equal(y["high"], y5["high"])
