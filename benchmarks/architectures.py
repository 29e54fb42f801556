"""Test accuracy of every architecture on a two-task config, and MMoE with top-2 routing, over several seeds
(mean ± standard error), each trained the same way from the config (default: configs/fashion_mnist_mmoe.yaml).

The stem and trunk are the config's; the part after the trunk gets about the same parameter budget in each variant
(4 experts of [64], or their equivalent: a shared [256] MLP for shared_bottom; 2 shared + 1 per task for cgc and
ple). single_task is the exception by definition: a whole network (stem and trunk included) per task; `--variant`
adds one with a narrower stem for equal parameters. Parameter counts are printed beside the accuracies.

    python benchmarks/architectures.py [--epochs 3] [--seeds 42,1,2] [--only mmoe,cgc] [--set KEY=VALUE ...]
    python benchmarks/architectures.py --config configs/multi_fashion_resnet.yaml --name multi_fashion_resnet_pairs8 \
        --epochs 3 --only mmoe,shared_bottom --set training.mixed_precision=mixed_bfloat16 \
        --variant single_task_narrow model.architecture=single_task "model.stem.widths=[24,48,96]" \
        model.stem.stem_filters=24

Writes benchmarks/results/<name>.txt (default: architectures.txt).
"""

from __future__ import annotations

import argparse
import math
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


def mean_and_error(values: list[float]) -> str:
    """'mean ± standard error' of `values` (± 0 for one value)."""
    error = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {error:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--name", default="architectures", help="results file: benchmarks/results/<name>.txt")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--only", default="", help="comma-separated variants (default: all)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every variant")
    parser.add_argument(
        "--variant", nargs="+", action="append", default=[], metavar=("NAME", "OVERRIDE"), help="an extra variant"
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = {n: o for n, o in VARIANTS.items() if not args.only or n in args.only.split(",")}
    variants.update({name: overrides for name, *overrides in args.variant})
    tasks = [task.name for task in load_config(args.config).tasks]
    lines = [
        f"{os.path.basename(args.config)}, {args.epochs} epochs, seeds {seeds}, {os.cpu_count()} CPUs"
        + "".join(f", --set {kv}" for kv in args.set)
        + "; test accuracy mean ± standard error",
        f"{'variant':<20} {'params':>9} " + " ".join(f"{t:>17}" for t in tasks) + f" {'s/epoch':>8}",
    ]
    print(lines[0], flush=True)
    for name, variant in variants.items():
        acc, seconds, params = {task: [] for task in tasks}, [], 0
        for seed in seeds:
            overrides = [
                f"training.epochs={args.epochs}",
                f"experiment.seed={seed}",
                "logging.progress=none",
                *args.set,
                *variant,
            ]
            config = load_config(args.config, overrides)
            params = count_params(build_components(config, training=False).model)
            metrics = train_in_scratch_dir(config)
            for task in acc:
                acc[task].append(metrics["tasks"][task]["accuracy"])
            seconds.append(metrics["train_seconds"] / args.epochs)
            print(f"  {name} seed {seed}: " + ", ".join(f"{t} {v[-1]:.4f}" for t, v in acc.items()), flush=True)
        cells = " ".join(f"{mean_and_error(acc[task]):>17}" for task in tasks)
        lines.append(f"{name:<20} {params:>9,} {cells} {statistics.median(seconds):>8.1f}")
        print(lines[-1], flush=True)
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
