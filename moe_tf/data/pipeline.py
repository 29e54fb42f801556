"""From a config to batched tf.data pipelines of `(inputs, labels, loss_weights)` for each split role.

- `inputs`: {feature: [batch, ...]} for every model input; with several sources also `_source` (int32 [batch], the
  index of the source each example comes from). A feature its source does not have is zeros (the model skips it).
- `labels`: {task: [batch]}: int64 class ids (-1 missing) or float32 targets (NaN missing).
- `loss_weights`: {task: float32 [batch]}: 1 / (labelled examples of the task in the *global* batch) where the example
  carries the task's label, else 0. A replica's Σ weight · loss sums, across replicas, to the task's mean loss over
  its labelled examples in the global batch, exactly, with no communication in the step — except when each
  multi_worker worker reads its own file shard: the pipeline then gives the masks and the step divides them by their
  sum across workers (`TaskData.per_worker`). With sample weights
  (`weights:` of a source) it is w / Σ w over the labelled examples: the sample-weighted mean.

Every training batch comes from one source (`data.sampling`, see sampling.py); with one source the pipeline is that
source's shuffled epochs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tensorflow as tf

from moe_tf.data.augment import augment_image
from moe_tf.data.base import SOURCE_KEY, FeatureSpec, SourceData
from moe_tf.data.sampling import source_probabilities, source_schedule
from moe_tf.data.statistics import Moments, count_values
from moe_tf.data.tasks import TaskInfo, check_labels, resolve_tasks
from moe_tf.errors import ConfigError, DataError
from moe_tf.registry import DATASETS

_GRAPH_SEED = 87654321
_SOURCE_SEED_STRIDE = 1_000_003  # shuffle seeds of source s: experiment.seed + s·stride + epoch
_WORD_DROP_SALT = 7_919  # word-dropout seeds are folded with this (image augmentation uses the same base seed)


@dataclass
class TaskData:
    """The loaded sources, the resolved tasks, the model inputs, and factories for batched pipelines."""

    sources: dict[str, SourceData]  # in config order
    tasks: list[TaskInfo]
    features: dict[str, FeatureSpec]  # every model input, by name
    data_config: Any  # the config's `data` section (moe_tf.config.schema.DataConfig)
    seed: int
    vectorizers: dict = field(default_factory=dict)  # {text or categorical feature: raw [batch] → ids}, by the model
    _statistics: dict = field(default_factory=dict, repr=False)  # feature_statistics, computed once
    # Training batches are read from this many shards of the streamed training files (configure_sharding): each
    # global batch is 1/N of a batch from each. `per_worker`: each multi_worker worker reads its shard alone, so its
    # loss weights are normalised in the step (the labelled examples of the global batch are summed across workers).
    file_shards: int = 1
    per_worker: bool = False

    def attach_vectorizers(self, vectorizers: dict) -> None:
        """Batches carry ids instead of raw values for these text and categorical features (the model's own
        vectorizers and lookups, so the training step runs on ids, which XLA and TPUs can compile, and the export
        still takes raw values)."""
        self.vectorizers = dict(vectorizers)

    def texts(self, feature: str, batch_size: int = 1024) -> tf.data.Dataset:
        """The strings of a text feature in the training splits of the sources that have it, batched (what its
        vocabulary is built from)."""
        return _concatenate(
            [
                s.splits["train"].map(lambda x, y, f=feature: x[f])
                for s in self.sources.values()
                if feature in s.features
            ]
        ).batch(batch_size)

    def pass_records(self) -> dict:
        """{source: its pass record} of the streamed sources (what the run directory keeps; {} without any)."""
        return {name: s.pass_record for name, s in self.sources.items() if s.pass_record is not None}

    @property
    def multi_source(self) -> bool:
        return len(self.sources) > 1

    def size(self, role: str) -> int:
        return sum(s.sizes.get(role, 0) for s in self.sources.values())

    def _streamed(self, feature: str, kind: str):
        """(what the streamed sources that have `feature` gathered of it in their pass, the other sources)."""
        gathered, others = [], []
        for source in self.sources.values():
            if feature in source.features:
                stats = source.statistics
                table = getattr(stats, kind) if stats is not None else {}
                if feature in table:
                    gathered.append(table[feature])
                else:
                    others.append(source)
        return gathered, others

    def _chunks_of(self, sources, feature: str):
        for source in sources:
            if source.arrays:
                yield source.arrays["train"][0][feature]
            else:
                yield from (x[feature] for x, _ in source.splits["train"].batch(4096).as_numpy_iterator())

    def value_counts(self, feature: str) -> Counter:
        """{value: occurrences} of a categorical feature over the training splits of the sources that have it."""
        counts, others = self._streamed(feature, "counts")
        total: Counter = Counter()
        for c in counts:
            total.update(c)
        options = self.features[feature].options
        for chunk in self._chunks_of(others, feature):
            total.update(count_values(chunk, options))
        return total

    def bucket_values(self, feature: str) -> np.ndarray:
        """A bucketed feature's training values (a seeded sample of at most statistics.SAMPLE_SIZE per streamed
        source), for its quantile boundaries."""
        samples, others = self._streamed(feature, "samples")
        parts = [s.values for s in samples]
        parts += [np.asarray(c, np.float64).reshape(-1) for c in self._chunks_of(others, feature)]
        return np.concatenate(parts) if parts else np.zeros(0)

    def feature_statistics(self, feature: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, variance and 0/1-indicator mask of a numeric feature over the training splits of the sources that
        have it, per element of the feature's shape (float64 accumulation). An element is an indicator when every
        training value of it is 0 or 1. Elements the model reads through log1p are counted transformed; missing
        values (NaN) are left out."""
        if feature not in self._statistics:
            moments = Moments(self.features[feature])
            gathered, others = self._streamed(feature, "moments")
            for m in gathered:
                moments.merge(m)
            for chunk in self._chunks_of(others, feature):
                moments.add(chunk)
            self._statistics[feature] = moments.result()
        return self._statistics[feature]

    # ---- one source's batches --------------------------------------------------------------------------------

    def _complete(self, index: int, ds: tf.data.Dataset, groups: bool = False, normalize: bool = True):
        """Batches of one source's (features, source labels) → the full (inputs, labels, loss_weights); with
        `groups` (evaluation batches, which `gauc` reads), labels also hold each `group_by` task's group keys.
        Without `normalize` (a shard of the global batch), loss weights are the labelled-example masks (times sample
        weights), normalised once the global batch is whole (`normalized_weights`)."""
        name = list(self.sources)[index]
        own = self.sources[name]
        tables = {t.name: tf.constant(t.label_table) for t in self.tasks if t.label_table is not None}
        tasks, features, multi, vectorizers = self.tasks, self.features, self.multi_source, self.vectorizers
        # {group key label: (the input whose raw values group, the task's source)}
        grouped = {t.group_key: (t.group_by, t.source) for t in tasks if t.group_by is not None} if groups else {}

        def complete(x, y):
            batch = tf.shape(next(iter(x.values())))[0]
            inputs = {f: (x[f] if f in x else spec.zeros(batch)) for f, spec in features.items()}
            keys = {key: _group_keys(inputs[f]) for key, (f, _) in grouped.items()}  # raw values, before lookups
            for f, vectorize in vectorizers.items():
                inputs[f] = vectorize(inputs[f])
            if multi:
                inputs[SOURCE_KEY] = tf.fill([batch], tf.constant(index, tf.int32))
            labels, weights = {}, {}
            for t in tasks:
                if t.source != name:
                    labels[t.name] = tf.fill([batch], tf.constant(t.missing, _label_dtype(t)))
                    weights[t.name] = tf.zeros([batch])
                    continue
                v = y[t.label]
                if t.name in tables:  # -1 (missing) stays -1
                    v = tf.where(v >= 0, tf.gather(tables[t.name], tf.maximum(v, 0)), v)
                if t.kind == "regression":
                    value = tf.cast(v, tf.float32)
                    labels[t.name] = (
                        value if own.labels[t.label].kind == "value" else tf.where(v >= 0, value, np.nan)
                    )  # an integer column's -1 is a missing target
                    mask = tf.logical_not(tf.math.is_nan(labels[t.name]))
                else:
                    labels[t.name] = v
                    mask = v >= 0
                mask = tf.cast(mask, tf.float32)
                if t.label in own.sample_weights:  # the sample-weighted mean; a zero weight drops the example
                    mask = mask * y[own.sample_weights[t.label]]
                weights[t.name] = mask / tf.maximum(tf.reduce_sum(mask), 1e-12) if normalize else mask
            for key, (_, source) in grouped.items():  # gauc's groups; another source's examples are in none (-1)
                labels[key] = keys[key] if source == name else tf.fill([batch], tf.constant(-1, tf.int64))
            return inputs, labels, weights

        return ds.map(complete, num_parallel_calls=tf.data.AUTOTUNE)

    def _epochs(self, index: int, global_batch_size: int, first_epoch: int, shard=None) -> tf.data.Dataset:
        """Source `index`'s full training batches from epoch `first_epoch` on, without end.

        Epoch `e` is shuffled with seed `experiment.seed + index·stride + e` and augmented with per-example seeds,
        so it is the same batches whether it is read alone or after other epochs (exact resume relies on this).

        `shard` (k, n): shard k of n of a streamed source's training files — the epoch's files in its seeded order,
        dealt round-robin — in batches of global_batch_size / n, exactly as many per epoch as the global batches of
        an epoch (a shard short of examples starts over its files; one with more leaves the rest), with unnormalised
        loss weights.
        """
        source = list(self.sources.values())[index]
        cfg = self.data_config
        base = source.splits["train"]
        if cfg.cache and not source.arrays:
            base = base.cache()
        aug, buffer = cfg.augmentation, cfg.shuffle_buffer
        seed = self.seed + index * _SOURCE_SEED_STRIDE
        images = [f for f, spec in source.features.items() if spec.modality == "image"] if aug.enabled else []
        drop_words = self._word_dropout(index, shard)

        def finish(batches, e):
            return drop_words(self._complete(index, batches, normalize=shard is None), e)

        batch_size = global_batch_size // (shard[1] if shard else 1)
        per_epoch = self.batches_per_epoch(global_batch_size)[index]

        if source.arrays and not images:
            # In-memory arrays: shuffle the example indices and gather each batch in one op. tf.data's shuffle draws
            # the same permutation whatever the elements are, so these are exactly the batches of shuffling the
            # examples themselves (the path below), made ~3x faster (Multi-Fashion on two cores: 390k vs 135k
            # examples/s; the CPU time it frees goes to the training step).
            x, y = source.arrays["train"]
            columns = tf.nest.map_structure(tf.constant, (x, y))
            size = source.sizes["train"]

            def one_epoch(e):
                tf.compat.v1.set_random_seed(_GRAPH_SEED)  # as below
                order = tf.data.Dataset.range(size).shuffle(buffer, seed=seed + e, reshuffle_each_iteration=False)
                batches = order.batch(global_batch_size, drop_remainder=True).map(
                    lambda rows: tf.nest.map_structure(lambda c: tf.gather(c, rows), columns)
                )
                return finish(batches, e)

            return tf.data.Dataset.range(first_epoch, 2**62).flat_map(one_epoch)

        def one_epoch(e):  # e: an int64 scalar tensor (traced once for all epochs)
            # The shuffle's op seed is a tensor; fixing this function graph's own seed keeps tf.data from comparing
            # it with the global seed (which fails when that is 0) and makes epoch orders independent of it.
            tf.compat.v1.set_random_seed(_GRAPH_SEED)
            epoch = source.train_epoch(seed + e, shard) if source.train_epoch is not None else base
            ds = epoch.shuffle(buffer, seed=seed + e, reshuffle_each_iteration=False)
            parse = source.parse  # serialized records: shuffled and batched as strings, each batch parsed in one op
            if images:
                if parse is not None:
                    ds, parse = ds.batch(256).map(parse).unbatch(), None

                def augment(position, element):
                    x, y = element
                    example_seed = tf.stack([self._epoch_seed(e), position + (shard[0] << 40 if shard else 0)])
                    x = dict(x)
                    for k, f in enumerate(images):
                        s = example_seed if k == 0 else tf.random.experimental.stateless_fold_in(example_seed, k)
                        x[f] = augment_image(x[f], aug, s)
                    return x, y

                ds = ds.enumerate().map(augment, num_parallel_calls=tf.data.AUTOTUNE)
            batches = ds.batch(batch_size, drop_remainder=True)
            if shard is not None:
                batches = batches.repeat().take(per_epoch)
            if parse is not None:
                batches = batches.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
            return finish(batches, e)

        # Epochs are generated lazily, so a pipeline of thousands of epochs costs no more to build than one.
        return tf.data.Dataset.range(first_epoch, 2**62).flat_map(one_epoch)

    def _epoch_seed(self, epoch):
        """The first half of the stateless seeds of epoch `epoch`'s augmentation and word dropout."""
        return self.seed * 100_003 + epoch

    def _word_dropout(self, index: int, shard=None):
        """Source `index`'s `token_dropout` as `(batches, epoch) → batches`: each token id of its text inputs is
        deleted with that chance (the kept ones close up, in order; the row is padded at the end). Seeded by epoch and
        batch position, so a resumed run deletes the same words. Batches pass unchanged at rate 0."""
        name = list(self.sources)[index]
        rate = getattr(self.data_config.sources[name], "token_dropout", 0.0)
        if not rate:
            return lambda batches, epoch: batches
        texts = [
            f
            for f, spec in sorted(self.sources[name].features.items())
            if f in self.vectorizers and spec.modality == "text"
        ]
        if not texts:
            raise DataError(
                f"data.sources.{name}.token_dropout={rate}: the source has no text input to drop words from"
            )

        offset = shard[0] << 40 if shard else 0  # file shards: each shard's batches its own draws

        def apply(batches, epoch):
            def drop(position, batch):
                inputs, labels, weights = batch
                inputs = dict(inputs)
                for k, f in enumerate(texts):
                    ids = inputs[f]
                    seed = tf.random.experimental.stateless_fold_in(
                        tf.stack([self._epoch_seed(epoch), position + offset]), _WORD_DROP_SALT + k
                    )
                    keep = tf.logical_and(tf.random.stateless_uniform(tf.shape(ids), seed) >= rate, ids != 0)
                    inputs[f] = tf.ragged.boolean_mask(ids, keep).to_tensor(0, shape=tf.shape(ids))
                return inputs, labels, weights

            return batches.enumerate().map(drop, num_parallel_calls=tf.data.AUTOTUNE)

        return apply

    # ---- pipelines -------------------------------------------------------------------------------------------

    def batches_per_epoch(self, global_batch_size: int) -> list[int]:
        """Full training batches per epoch of each source."""
        return [s.sizes.get("train", 0) // global_batch_size for s in self.sources.values()]

    def steps_per_epoch(self, global_batch_size: int) -> int:
        """An epoch is one pass over every source's training split: the sum of their full batches."""
        per_source = self.batches_per_epoch(global_batch_size)
        for name, n in zip(self.sources, per_source):
            if n == 0:
                raise DataError(
                    f"the training split of {name!r} ({self.sources[name].sizes.get('train', 0)} "
                    f"examples) has fewer examples than one global batch ({global_batch_size}); "
                    "lower training.batch_size"
                )
        return sum(per_source)

    def source_probabilities(self) -> np.ndarray:
        sampling = self.data_config.sampling
        sizes = [s.sizes.get("train", 0) for s in self.sources.values()]
        return source_probabilities(sizes, sampling.type, sampling.temperature)

    def source_schedule(self, total_steps: int) -> np.ndarray:
        """The source of every training step (all zeros with one source)."""
        if not self.multi_source:
            return np.zeros(total_steps, np.uint8)
        return source_schedule(self.source_probabilities(), total_steps, self.seed)

    def train_dataset(self, global_batch_size: int, start_step: int = 0, total_steps: int | None = None, shard=None):
        """The training batches of steps `start_step` … `total_steps - 1` (without end when `total_steps` is None
        and there is one source), each exactly the batch that step sees in an uninterrupted run.

        With `shard` (k, n): a multi_worker worker's part of each batch (shard k of the training files, loss weights
        normalised in the step). With `file_shards` N > 1 in one process: each batch is the N shards' parts
        together, the batches of N workers."""
        if shard is not None:
            return _finish(self._batches(global_batch_size, start_step, total_steps, shard))
        if self.file_shards == 1:
            return _finish(self._batches(global_batch_size, start_step, total_steps))
        n = self.file_shards
        parts = tuple(self._batches(global_batch_size, start_step, total_steps, (k, n)) for k in range(n))
        whole = tf.data.Dataset.zip(parts).map(
            lambda *batches: normalized_weights(tf.nest.map_structure(lambda *t: tf.concat(t, 0), *batches)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return _finish(whole)

    def _batches(self, global_batch_size: int, start_step: int, total_steps: int | None, shard=None):
        per_source = self.batches_per_epoch(global_batch_size)
        self.steps_per_epoch(global_batch_size)  # checks every source has a batch
        if not self.multi_source:
            first_epoch, offset = divmod(start_step, per_source[0])
            ds = self._epochs(0, global_batch_size, first_epoch, shard).skip(offset)
            return ds.take(total_steps - start_step) if total_steps is not None else ds
        if total_steps is None:
            raise ValueError("several sources need total_steps (the source schedule is drawn for them)")
        schedule = self.source_schedule(total_steps)
        drawn = np.bincount(schedule[:start_step], minlength=len(self.sources))  # batches each source has given
        streams = []
        for index, (count, n) in enumerate(zip(drawn, per_source)):
            first_epoch, offset = divmod(int(count), n)
            streams.append(self._epochs(index, global_batch_size, first_epoch, shard).skip(offset))
        choices = tf.data.Dataset.from_tensor_slices(schedule[start_step:].astype(np.int64))
        return tf.data.Dataset.choose_from_datasets(streams, choices)

    def configure_sharding(self, workers: int, global_batch_size: int) -> None:
        """Sets `file_shards` and `per_worker` for `workers` multi_worker workers (1: one process), from
        `data.sharding` and `data.file_shards`; a configuration that cannot work is an error saying what to do."""
        cfg = self.data_config
        memory = [name for name, s in self.sources.items() if s.train_epoch is None]
        files = cfg.sharding == "files" or (cfg.sharding == "auto" and not memory and workers > 1)
        if workers > 1:
            if cfg.file_shards not in (None, workers):
                raise ConfigError(
                    f"data.file_shards: {cfg.file_shards}, but multi_worker reads one shard per worker ({workers})"
                )
            n = workers if files else 1
        else:
            n = cfg.file_shards or 1
            if n > 1 and cfg.sharding == "data":
                raise ConfigError(f"data.file_shards: {n} shards the files; it does not go with data.sharding: data")
        if n > 1 and memory:
            raise ConfigError(
                f"data.sharding: files: source {memory[0]!r} is held in memory, not streamed from files; set "
                "data.sharding: data (every worker reads every example and keeps its part of each batch)"
            )
        if n > 1 and global_batch_size % n:
            raise ConfigError(f"training.batch_size {global_batch_size} does not split into {n} equal file shards")
        if n > 1:
            for name, source in self.sources.items():
                check_shards(name, source, n, global_batch_size // n)
        self.file_shards, self.per_worker = n, n > 1 and workers > 1

    def has_split(self, role: str) -> bool:
        return self.size(role) > 0

    def require_split(self, role: str) -> None:
        """Raises a DataError unless some source has examples of `role`."""
        if not any(s.sizes.get(role, 0) > 0 and role in s.splits for s in self.sources.values()):
            sizes = {name: s.sizes.get(role, 0) for name, s in self.sources.items()}
            raise DataError(
                f"no {role!r} split to evaluate: the data sources have {sizes} {role} examples "
                f"(set {role}_fraction > 0 on a source, or evaluate another split)"
            )

    def eval_dataset(self, role: str, global_batch_size: int) -> tf.data.Dataset:
        """An evaluation pipeline for `role` ("eval" or "test"): each source's split in order, in batches of one
        source, keeping each source's last partial batch. Build it after any checkpoint is restored: a text input is
        vectorized with the vocabulary its vectorizer holds then."""
        self.require_split(role)
        parts = [
            self._complete(i, s.splits[role].batch(global_batch_size), groups=True)
            for i, s in enumerate(self.sources.values())
            if s.sizes.get(role, 0) > 0 and role in s.splits
        ]
        return _finish(_concatenate(parts))


def normalized_weights(batch):
    """A whole global batch's loss weights from the labelled-example masks of its parts (`_complete` without
    `normalize`): each task's mask over its sum, as `_complete` gives a batch read whole."""
    inputs, labels, masks = batch
    return inputs, labels, {t: m / tf.maximum(tf.reduce_sum(m), 1e-12) for t, m in masks.items()}


def check_shards(name: str, source: SourceData, n: int, shard_batch: int) -> None:
    """A streamed source can be read as `n` file shards: at least `n` training files, and the fewest examples a
    shard can be dealt in an epoch (its files, round-robin, the smallest ones) fill one batch of `shard_batch`."""
    counts = sorted(source.file_examples)
    if len(counts) < n:
        raise DataError(
            f"data.sources.{name}: {len(counts)} training file(s) for {n} file shards (one per worker): write the "
            f"data as more files (e.g. `moe-tf convert --shards {max(8, 2 * n)}`), or set data.sharding: data "
            "(every worker reads every file and keeps its part of each batch)"
        )
    fewest = sum(counts[: len(counts) // n])
    if fewest < shard_batch:
        raise DataError(
            f"data.sources.{name}: a file shard can hold as few as {fewest} training examples (the smallest "
            f"{len(counts) // n} of {len(counts)} files), fewer than its part of a batch ({shard_batch}); write "
            "files of more even size, lower training.batch_size, or set data.sharding: data"
        )


def _concatenate(parts: list[tf.data.Dataset]) -> tf.data.Dataset:
    """The datasets one after another."""
    ds = parts[0]
    for part in parts[1:]:
        ds = ds.concatenate(part)
    return ds


def _label_dtype(task: TaskInfo):
    return tf.float32 if task.kind == "regression" else tf.int64


def _finish(ds: tf.data.Dataset) -> tf.data.Dataset:
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    # tf.data's autotuning model off: with it, a pipeline now and then settled into a mode where the training step
    # waited ~40% of its time on input with both cores idle (a bimodal step time, 320 or 520 ms on the same dense
    # MMoE, decided when the iterator starts and kept for its life; benchmarks/RESULTS.md#speed). AUTOTUNE
    # parallelism then means one call per core, and the prefetch buffer still grows on its own.
    options.autotune.enabled = False
    return ds.with_options(options).prefetch(tf.data.AUTOTUNE)


def merge_features(sources: dict[str, SourceData]) -> dict[str, FeatureSpec]:
    """The model inputs: every source's features by name. Sources that name a feature alike must agree on its
    dtype, shape and modality (they then share the input and its stem)."""
    merged, owner = {}, {}
    for name, source in sources.items():
        for f, spec in source.features.items():
            if f == SOURCE_KEY:
                raise ConfigError(f"data.sources.{name}: the feature name {SOURCE_KEY!r} is reserved")
            if f in merged and merged[f] != spec:
                raise ConfigError(
                    f"data.sources.{name}: feature {f!r} ({spec.dtype} {list(spec.shape)}, {spec.modality}) differs "
                    f"from the feature {f!r} of data.sources.{owner[f]} ({merged[f].dtype} {list(merged[f].shape)}, "
                    f"{merged[f].modality}); features with one name share one model input, so give one of them "
                    "another name (e.g. its source's `feature:` key)"
                )
            merged.setdefault(f, spec)
            owner.setdefault(f, name)
    return dict(sorted(merged.items()))


def build_task_data(config, stored=None, echo=None) -> TaskData:
    """Loads the data sources the tasks read and resolves the tasks against them.

    Args:
        config: the whole ExperimentConfig.
        stored: the run directory's record of the streamed sources' pass (moe_tf.data.streamed.StoredPass), read
            instead of passing over their files again.
        echo: prints the progress of a streamed source's pass over its files.
    """
    used = [name for name in config.data.sources if any(t.dataset == name for t in config.tasks)]
    sources = {}
    for name in used:
        src_cfg = config.data.sources[name]
        cls = DATASETS.get(src_cfg.type, f"data.sources.{name}.type")
        sources[name] = cls(src_cfg, config.experiment.seed, name, stored, echo).load()
        if sources[name].sizes.get("train", 0) == 0:
            raise DataError(f"data source {name!r} has an empty training split")
    tasks = resolve_tasks(config.tasks, sources)
    check_labels(tasks, sources)
    return TaskData(sources, tasks, merge_features(sources), config.data, config.experiment.seed)


def _group_keys(values):
    """int64 group keys of raw values: integers as they are, strings and floats by a stable hash (the raw value, not
    a vocabulary id, so values unseen in training stay distinct groups)."""
    if values.dtype.is_integer:
        return tf.cast(values, tf.int64)
    text = values if values.dtype == tf.string else tf.strings.as_string(values)
    return tf.strings.to_hash_bucket_fast(text, 2**62)
