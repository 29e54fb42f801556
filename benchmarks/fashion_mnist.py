"""Fashion-MNIST (Debian IDX files) MMoE: test accuracy of both tasks after N epochs and time per epoch.

    python benchmarks/fashion_mnist.py [--epochs 3] [--config configs/fashion_mnist_mmoe.yaml] [--set k=v ...]
                                       [--name fashion_mnist]

Trains through the same library call as `moe-tf train`; writes benchmarks/results/fashion_mnist.txt.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.training import run  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(HERE, "..", "configs", "fashion_mnist_mmoe.yaml"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--name", default="fashion_mnist", help="results/<name>.txt")
    args = parser.parse_args()
    config = load_config(args.config, [f"training.epochs={args.epochs}", "logging.progress=lines", *args.set])
    run_dir = tempfile.mkdtemp(prefix="moe_tf_fm_")
    try:
        metrics = run(config, run_dir, export=False)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    lines = [f"config {os.path.relpath(args.config, os.getcwd())}, {args.epochs} epochs, {os.cpu_count()} CPUs"
             + "".join(f", --set {kv}" for kv in args.set)]
    for task, values in metrics["tasks"].items():
        lines.append(f"test {task}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    lines.append(f"train time {metrics['train_seconds']:.1f} s, {metrics['train_seconds'] / args.epochs:.1f} s/epoch "
                 f"(including per-epoch evaluation), {metrics['examples_per_sec']:,.0f} examples/s")
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"{args.name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
