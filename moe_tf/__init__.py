"""moe-tf: multi-task mixture-of-experts training on TensorFlow 2 / Keras 3.

Importing the package registers every component (data sources, stems, gates, architectures, weightings).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ start-up chatter out of the CLI

__version__ = "0.1.0"

from moe_tf import data, models  # noqa: E402,F401  (registers sources, stems, gates, architectures)
from moe_tf.training import weightings  # noqa: E402,F401
