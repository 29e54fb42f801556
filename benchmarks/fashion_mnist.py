"""Fashion-MNIST (Debian IDX files) MMoE: test accuracy of both tasks after N epochs and time per epoch.

    python benchmarks/fashion_mnist.py [--epochs 3] [--config configs/fashion_mnist_mmoe.yaml] [--set k=v ...]
                                       [--seeds 42,1,2,7] [--name fashion_mnist]

With several seeds, each trains in turn and the lines report every seed, then the minimum and mean accuracies.

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
from moe_tf.run import train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(HERE, "..", "configs", "fashion_mnist_mmoe.yaml"))
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--seeds", default="", help="comma-separated experiment.seed values (default: the config's)")
    parser.add_argument("--name", default="fashion_mnist", help="results/<name>.txt")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s] or [None]
    lines = [
        f"config {os.path.relpath(args.config, os.getcwd())}, {args.epochs} epochs, {os.cpu_count()} CPUs"
        + "".join(f", --set {kv}" for kv in args.set)
    ]
    accuracies = {}
    for seed in seeds:
        overrides = [f"training.epochs={args.epochs}", "logging.progress=lines", *args.set]
        config = load_config(args.config, overrides + ([f"experiment.seed={seed}"] if seed is not None else []))
        run_dir = tempfile.mkdtemp(prefix="moe_tf_fm_")
        try:
            metrics = train(config, run_dir, export=False)
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
        lines.append(f"seed {config.experiment.seed}:")
        for task, values in metrics["tasks"].items():
            lines.append(f"  test {task}: " + ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
            accuracies.setdefault(task, []).append(values["accuracy"])
        lines.append(
            f"  train time {metrics['train_seconds']:.1f} s, "
            f"{metrics['train_seconds'] / args.epochs:.1f} s/epoch (including per-epoch evaluation), "
            f"{metrics['examples_per_sec']:,.0f} examples/s"
        )
    if len(seeds) > 1:
        for task, values in accuracies.items():
            mean = sum(values) / len(values)
            se = (sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values)) ** 0.5
            lines.append(
                f"{task} test accuracy over {len(values)} seeds: min {min(values):.4f}, mean {mean:.4f} ± {se:.4f} "
                "(s.e.)"
            )
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"{args.name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
