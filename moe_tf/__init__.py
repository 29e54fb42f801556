"""moe-tf: multi-task mixture-of-experts training on TensorFlow 2 / Keras 3.

The Python API: `moe_tf.Config`, `moe_tf.train`, `moe_tf.load` (moe_tf.api) and the Keras layers of `moe_tf.layers`.

Importing the package sets TensorFlow's environment (below) and nothing else: TensorFlow loads with the first module
that needs it, so every `moe_tf.*` import puts these defaults in force before it does, and `moe_tf.config` loads
without it. Components register on the first lookup in their registry (moe_tf.registry).
"""

import os

USER_TF_LOG_LEVEL = os.environ.get("TF_CPP_MIN_LOG_LEVEL")  # what `moe-tf --verbose` keeps
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # native information lines after start-up (moe_tf.native_logs)
# TensorFlow's oneDNN CPU kernels (convolutions, matmuls, pooling), which it turns on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX: on an AVX2 CPU they made a Multi-Fashion MMoE step 2.3x faster
# (benchmarks/RESULTS.md#speed).
# Read once, when TensorFlow loads: import moe_tf first, or set TF_ENABLE_ONEDNN_OPTS=0 to keep TensorFlow's default.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

__all__ = ["Config", "TrainResult", "Trained", "layers", "load", "train"]


def __getattr__(name: str):
    """The API's names and the package's modules (`moe_tf.errors`, `moe_tf.layers`), imported on first use, so
    `import moe_tf` stays free of TensorFlow."""
    import importlib

    if name in ("Config", "TrainResult", "Trained", "load", "train"):
        return getattr(importlib.import_module("moe_tf.api"), name)
    try:
        return importlib.import_module(f"moe_tf.{name}")
    except ModuleNotFoundError as e:
        if e.name != f"moe_tf.{name}":  # the module exists but needs something missing
            raise
        raise AttributeError(f"module 'moe_tf' has no attribute {name!r}") from None
