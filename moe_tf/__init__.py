"""moe-tf: multi-task mixture-of-experts training on TensorFlow 2 / Keras 3.

Importing the package registers every component (data sources, stems, gates, architectures, weightings).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI
# TensorFlow's oneDNN CPU kernels (convolutions, matmuls, pooling), which it turns on by default only on CPUs with
# AVX-512 VNNI/BF16 or AMX: on an AVX2 CPU they made a Multi-Fashion MMoE step 2.3x faster
# (benchmarks/RESULTS.md#speed).
# Read once, when TensorFlow loads: import moe_tf first, or set TF_ENABLE_ONEDNN_OPTS=0 to keep TensorFlow's default.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

__version__ = "0.1.0"

from moe_tf import data, models  # noqa: E402,F401  (registers sources, stems, gates, architectures)
from moe_tf.training import weightings  # noqa: E402,F401
