#!/usr/bin/env python
"""Same as `moe-tf train`: python scripts/train.py --config configs/digits_mmoe.yaml [--set k=v] [--output-dir D]."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from moe_tf.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
