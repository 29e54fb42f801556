"""Fashion-MNIST, two tasks (item, coarse category): test accuracy of every architecture, and MMoE with top-2
routing, over several seeds (mean ± std), each trained the same way from configs/fashion_mnist_mmoe.yaml.

The stem and trunk are the config's; the part after the trunk gets about the same parameter budget in each variant
(4 experts of [64], or their equivalent: a shared [256] MLP for shared_bottom; 2 shared + 1 per task for cgc and
ple). single_task is the exception by definition: a whole network (stem and trunk included) per task. Parameter
counts are printed beside the accuracies.

    python benchmarks/architectures.py [--epochs 3] [--seeds 42,1,2] [--only mmoe,cgc]

Writes benchmarks/results/architectures.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.report import train_in_scratch_dir, write_results  # noqa: E402
from moe_tf.components import build_components  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.models import count_params  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "fashion_mnist_mmoe.yaml")
VARIANTS = {
    "single_task": ["model.architecture=single_task"],
    "shared_bottom": ["model.architecture=shared_bottom", "model.experts.units=[256]"],
    "omoe": ["model.architecture=omoe"],
    "mmoe": [],
    "cgc": ["model.architecture={type: cgc, task_experts: 1}", "model.experts.count=2"],
    "ple": ["model.architecture={type: ple, levels: 2, task_experts: 1}", "model.experts.count=2"],
    "mmoe_top2": ["model.gate={type: noisy_top_k, k: 2}"],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n for n in VARIANTS if not args.only or n in args.only.split(",")]
    lines = [
        f"Fashion-MNIST, {args.epochs} epochs, seeds {seeds}, {os.cpu_count()} CPUs; test accuracy mean ± std",
        f"{'variant':<14} {'params':>9} {'item':>17} {'category':>17} {'s/epoch':>8}",
    ]
    print(lines[0], flush=True)
    for name in names:
        acc, seconds, params = {"item": [], "category": []}, [], 0
        for seed in seeds:
            overrides = [
                f"training.epochs={args.epochs}",
                f"experiment.seed={seed}",
                "logging.progress=none",
                *VARIANTS[name],
            ]
            config = load_config(CONFIG, overrides)
            params = count_params(build_components(config, training=False).model)
            metrics = train_in_scratch_dir(config)
            for task in acc:
                acc[task].append(metrics["tasks"][task]["accuracy"])
            seconds.append(metrics["train_seconds"] / args.epochs)
            print(f"  {name} seed {seed}: " + ", ".join(f"{t} {v[-1]:.4f}" for t, v in acc.items()), flush=True)
        cell = lambda v: f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"  # noqa: E731
        lines.append(
            f"{name:<14} {params:>9,} {cell(acc['item']):>17} {cell(acc['category']):>17} "
            f"{statistics.median(seconds):>8.1f}"
        )
        print(lines[-1], flush=True)
    write_results("architectures", lines)


if __name__ == "__main__":
    main()
