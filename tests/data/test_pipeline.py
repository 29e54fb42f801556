import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.data import build_task_data
from moe_tf.data.augment import augment_image
from moe_tf.data.base import LabelInfo, from_arrays, image_spec
from moe_tf.data.pipeline import TaskData
from moe_tf.data.tasks import check_labels, resolve_tasks
from moe_tf.errors import ConfigError, DataError
from tests.conftest import tiny_config


def test_derived_task_through_label_map():
    data = build_task_data(tiny_config())
    digit, high = data.tasks
    assert (digit.num_classes, high.num_classes, high.kind) == (10, 2, "binary")
    inputs, labels, _ = next(iter(data.eval_dataset("test", 400)))
    assert list(inputs) == ["image"]  # one source: no _source input
    assert inputs["image"].shape[1:] == (8, 8, 1) and inputs["image"].dtype == tf.uint8
    np.testing.assert_array_equal(labels["high"].numpy(), (labels["digit"].numpy() >= 5).astype(np.int64))


def test_train_batches_are_full_and_seeded():
    data = build_task_data(tiny_config())
    a = [x["image"].numpy() for x, _, _ in data.train_dataset(64, 0, 3)]
    b = [x["image"].numpy() for x, _, _ in data.train_dataset(64, 0, 3)]
    c = [x["image"].numpy() for x, _, _ in data.train_dataset(64, 19, 22)]
    assert all(x.shape[0] == 64 for x in a)
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])  # a new order each epoch
    assert data.steps_per_epoch(64) == 1258 // 64


def test_pipelines_run_without_the_tf_data_autotuning_model():
    """Autotuning made some iterators wait ~40 % of each step on input with the CPUs idle (benchmarks/RESULTS.md#speed);
    every pipeline the trainer and evaluator read turns it off, and stays deterministic."""
    data = build_task_data(tiny_config())
    for ds in (data.train_dataset(64, 0, 3), data.eval_dataset("eval", 64)):
        assert ds.options().autotune.enabled is False and ds.options().deterministic is True


def _source(labels):
    x = np.zeros((len(labels), 2, 2, 1), np.uint8)
    return {
        "digits": from_arrays(
            {"train": ({"image": x}, {"label": np.array(labels)})},
            {"label": LabelInfo(3, ["a", "b", "c"])},
            {"image": image_spec((2, 2, 1))},
        )
    }


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


def test_a_missing_source_label_stays_missing_through_a_label_map():
    # -1 in the source with a label_map once passed check_labels (through np.clip) and then failed in tf.gather.
    config = tiny_config(tasks=[{"name": "kind", "dataset": "digits", "label_map": [1, 0, 1]}])
    sources = _source([0, -1, 2, 1])
    tasks = resolve_tasks(config.tasks, sources)
    check_labels(tasks, sources)
    data = TaskData(sources, tasks, sources["digits"].features, config.data, 0)
    _, labels, weights = next(iter(data.train_dataset(4, 0, 1)))
    assert sorted(labels["kind"].numpy().tolist()) == [-1, 0, 1, 1]
    assert sorted(weights["kind"].numpy().tolist()) == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])
    with pytest.raises(DataError, match="label -3 of 'digits' in split 'train' is negative"):
        check_labels(tasks, _source([0, -3]))


def test_augmentation_keeps_shape_and_is_seeded():
    aug = tiny_config(data={"augmentation": {"flip": "horizontal", "crop_padding": 2}}).data.augmentation
    image = tf.constant(np.arange(8 * 8, dtype=np.uint8).reshape(8, 8, 1))
    seed = tf.constant([3, 4], tf.int64)
    a, b = augment_image(image, aug, seed), augment_image(image, aug, seed)
    assert a.shape == (8, 8, 1) and a.dtype == tf.uint8
    np.testing.assert_array_equal(a, b)
    others = [augment_image(image, aug, tf.constant([3, i], tf.int64)).numpy() for i in range(10)]
    assert any(not np.array_equal(a, o) for o in others)


def numpy_shifts(image, pad):
    """Every crop of `image` [H, W, C] zero-padded by `pad` on each side: {(dy, dx): [H, W, C]}."""
    h, w, _ = image.shape
    padded = np.pad(image, [(pad, pad), (pad, pad), (0, 0)])
    return {(dy, dx): padded[dy : dy + h, dx : dx + w] for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)}


@pytest.mark.parametrize(
    "flip, expected",
    [
        ("vertical", ["same", "up_down"]),
        ("horizontal", ["same", "left_right"]),
        ("both", ["same", "up_down", "left_right", "both"]),
    ],
)
def test_flips_give_exactly_the_flipped_images(flip, expected):
    """Over 64 seeds every output is one of the mode's flips (numpy), and each of them occurs."""
    aug = tiny_config(data={"augmentation": {"flip": flip}}).data.augmentation
    image = np.arange(8 * 8, dtype=np.uint8).reshape(8, 8, 1)
    flips = {"same": image, "up_down": image[::-1], "left_right": image[:, ::-1], "both": image[::-1, ::-1]}
    seen = set()
    for i in range(64):
        out = augment_image(tf.constant(image), aug, tf.constant([5, i], tf.int64)).numpy()
        (name,) = [n for n, f in flips.items() if np.array_equal(out, f)]
        seen.add(name)
    assert seen == set(expected)


def test_translate_shifts_by_up_to_its_fraction_of_the_image_with_zeros_coming_in():
    """translate 0.2 of 8 pixels: shifts of up to round(1.6) = 2 pixels each way (numpy: every crop of the image
    padded by 2); over 300 seeds all 25 shifts occur."""
    aug = tiny_config(data={"augmentation": {"translate": 0.2}}).data.augmentation
    image = np.arange(1, 8 * 8 + 1, dtype=np.uint8).reshape(8, 8, 1)
    shifts = numpy_shifts(image, 2)
    seen = set()
    for i in range(300):
        out = augment_image(tf.constant(image), aug, tf.constant([9, i], tf.int64)).numpy()
        (shift,) = [k for k, v in shifts.items() if np.array_equal(out, v)]
        seen.add(shift)
    assert seen == set(shifts)


def test_multi_epoch_pipeline_equals_epochs_read_alone():
    data = build_task_data(tiny_config(data={"augmentation": {"flip": "horizontal", "crop_padding": 1}}))
    together = [x["image"].numpy() for x, _, _ in data.train_dataset(64, 19, 57)]
    alone = [x["image"].numpy() for e in (1, 2) for x, _, _ in data.train_dataset(64, 19 * e, 19 * e + 19)]
    assert len(together) == len(alone) == 2 * (1258 // 64)
    for a, b in zip(together, alone):
        np.testing.assert_array_equal(a, b)


def test_gathered_batches_of_in_memory_arrays_equal_shuffled_examples():
    # An in-memory source's batches are gathered by shuffled index; they must be exactly the batches of shuffling
    # its examples (what a streamed source, e.g. TFDS, does), across epochs and from a resume point mid-epoch.
    data = build_task_data(tiny_config(data={"shuffle_buffer": 500}))
    source = next(iter(data.sources.values()))
    assert source.arrays
    gathered = list(data.train_dataset(64, 7, 45).as_numpy_iterator())
    source.arrays = {}  # the per-example path
    streamed = list(data.train_dataset(64, 7, 45).as_numpy_iterator())
    assert len(gathered) == len(streamed) == 38
    for a, b in zip(gathered, streamed):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
    assert not np.array_equal(gathered[0][0]["image"], gathered[19][0]["image"])


@pytest.mark.parametrize("cache", [True, False])
def test_data_cache_reads_a_streamed_source_once_and_changes_no_batch(cache):
    """data.cache: two epochs of a streamed source read its examples once (cache) or twice (no cache); the batches
    are the same either way."""
    data = build_task_data(tiny_config(data={"cache": cache, "shuffle_buffer": 500}))
    source = next(iter(data.sources.values()))
    source.arrays = {}  # the streamed path (as TFDS): the only one that caches
    reads = []

    def note():
        reads.append(1)
        return np.uint8(0)

    def counted(x, y):
        zero = tf.py_function(note, [], tf.uint8)
        zero.set_shape([])
        return {**x, "image": x["image"] + zero}, y

    size = source.sizes["train"]
    plain = list(data.train_dataset(64, 0, 2 * (size // 64)).as_numpy_iterator())
    source.splits["train"] = source.splits["train"].map(counted)
    batches = list(data.train_dataset(64, 0, 2 * (size // 64)).as_numpy_iterator())  # two epochs
    assert len(reads) == (size if cache else 2 * size)
    for a, b in zip(plain, batches, strict=True):
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)


def test_epoch_order_does_not_depend_on_the_global_seed():
    # The shuffle seed of each epoch is a tensor inside the lazily generated pipeline; a global seed of 0 once made
    # tf.data compare it as a Python bool.
    data = build_task_data(tiny_config())
    orders = []
    for global_seed in (0, 123):
        keras.utils.set_random_seed(global_seed)
        orders.append([y["digit"].numpy() for _, y, _ in data.train_dataset(64, 57, 95)])
    for a, b in zip(*orders):
        np.testing.assert_array_equal(a, b)
    first = [y["digit"].numpy() for _, y, _ in data.train_dataset(64, 57, 58)]
    np.testing.assert_array_equal(first[0], orders[0][0])
    assert not np.array_equal(orders[0][0], orders[0][19])  # epochs 3 and 4 are shuffled differently


def test_a_pipeline_of_a_million_epochs_is_built_lazily():
    data = build_task_data(tiny_config())
    ((x, y, _),) = data.train_dataset(64, 95, 19 * 10**6).take(1)
    ((x5, y5, _),) = data.train_dataset(64, 95, 96)
    np.testing.assert_array_equal(x["image"], x5["image"])
    np.testing.assert_array_equal(y["high"], y5["high"])


def test_cutout_zeroes_one_clipped_square_per_image_seeded():
    """Over 40 seeds each image has exactly one zeroed size×size square (clipped at the borders, so 4 to 16 pixels
    of a 4-square on 8×8), everything else untouched, the same for the same seed."""
    aug = tiny_config(data={"augmentation": {"cutout": 4}}).data.augmentation
    image = np.arange(1, 8 * 8 + 1, dtype=np.uint8).reshape(8, 8, 1)  # no zero pixel before
    sizes = set()
    for i in range(40):
        seed = tf.constant([5, i], tf.int64)
        out = augment_image(tf.constant(image), aug, seed).numpy()
        np.testing.assert_array_equal(out, augment_image(tf.constant(image), aug, seed).numpy())
        zero = out[..., 0] == 0
        rows, cols = np.nonzero(zero)
        assert zero.sum() == (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)  # one rectangle
        assert rows.max() - rows.min() < 4 and cols.max() - cols.min() < 4
        np.testing.assert_array_equal(out[~zero], image[~zero])
        sizes.add(int(zero.sum()))
    assert 16 in sizes and min(sizes) < 16  # whole squares and squares clipped at a border
