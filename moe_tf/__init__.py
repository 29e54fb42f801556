"""moe-tf: multi-task mixture-of-experts training on TensorFlow 2 / Keras 3.

Importing the package sets TensorFlow's environment (below) and nothing else: TensorFlow loads with the first module
that needs it, so every `moe_tf.*` import puts these defaults in force before it does, and `moe_tf.config` loads
without it. Components register on the first lookup in their registry (moe_tf.registry).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI
# TensorFlow's oneDNN CPU kernels (convolutions, matmuls, pooling), which it turns on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX: on an AVX2 CPU they made a Multi-Fashion MMoE step 2.3x faster
# (benchmarks/RESULTS.md#speed).
# Read once, when TensorFlow loads: import moe_tf first, or set TF_ENABLE_ONEDNN_OPTS=0 to keep TensorFlow's default.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"
