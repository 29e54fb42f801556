"""Builds the tf.distribute strategy named by `training.strategy`.

Call `build_strategy` before any other TensorFlow op: multi-worker and logical-CPU setups
must configure the runtime before it starts.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from moe_tf.errors import ConfigError, MoeTfError


def configure_logical_cpus(count: int | None) -> None:
    """Splits the host CPU into `count` logical devices (to run `mirrored` on a CPU-only machine)."""
    if not count:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current and len(current) == count:
        return
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * count)
    except RuntimeError:
        have = len(tf.config.list_logical_devices("CPU"))
        if have != count:
            raise MoeTfError(
                f"training.logical_cpus={count}: TensorFlow already started with {have} CPU device(s); "
                "set it before anything else runs (e.g. in a fresh process)"
            ) from None


def build_strategy(cfg) -> tf.distribute.Strategy:
    """Args: the `training` config. Returns the strategy (its scope is where variables must be created)."""
    configure_logical_cpus(cfg.logical_cpus)
    kind = cfg.strategy
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind == "one_device":
        device = (cfg.devices or [_first_device()])[0]
        return tf.distribute.OneDeviceStrategy(device)
    if kind == "mirrored":
        return tf.distribute.MirroredStrategy(devices=cfg.devices or None)
    if kind == "multi_worker":
        _check_tf_config()
        # A collective that waits longer than this for a peer (killed, hung, unreachable) fails instead of hanging.
        options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=cfg.collective_timeout)
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    if kind == "tpu":
        return _tpu_strategy(cfg.tpu)
    raise ConfigError(f"training.strategy: unknown strategy {kind!r}")


def _first_device() -> str:
    gpus = tf.config.list_logical_devices("GPU")
    return gpus[0].name if gpus else "/cpu:0"


def _check_tf_config() -> None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise MoeTfError(
            "training.strategy=multi_worker needs the TF_CONFIG environment variable "
            '(e.g. {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", '
            '"index": 0}}); see docs/guides/distributed.md'
        )
    try:
        spec = json.loads(raw)
        workers = spec["cluster"]["worker"]
        index = spec["task"]["index"]
    except (ValueError, KeyError, TypeError) as e:
        raise MoeTfError(f"TF_CONFIG is not valid: {e!r}; expected cluster.worker and task.index") from None
    if not isinstance(workers, list) or not 0 <= int(index) < len(workers):
        raise MoeTfError(f"TF_CONFIG: task.index {index} is not a valid index into cluster.worker {workers}")


def _tpu_strategy(tpu: str | None) -> tf.distribute.Strategy:
    """TPUStrategy on the TPU named by `training.tpu` ('' or 'local' for a TPU VM, else its name or grpc://address)."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu="" if tpu in (None, "local") else tpu)
        if tpu not in (None, "", "local"):
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as e:
        raise MoeTfError(f"training.strategy=tpu: no TPU could be reached (training.tpu={tpu!r}): {e}") from None
    return tf.distribute.TPUStrategy(resolver)


def worker_count(strategy: tf.distribute.Strategy) -> int:
    """The machines (workers and chief) a multi_worker run spans; 1 under every other strategy."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return 1
    cluster = resolver.cluster_spec().as_dict()
    return max(1, len(cluster.get("worker", [])) + len(cluster.get("chief", [])))


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes logs, checkpoints and exports (always true outside multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    cluster = resolver.cluster_spec().as_dict()
    if task_type == "chief":
        return True
    return task_type == "worker" and task_id == 0 and "chief" not in cluster
