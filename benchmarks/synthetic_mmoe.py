"""The synthetic benchmark of Ma et al. 2018 (MMoE, KDD, figure 4): test MSE of shared_bottom, omoe and mmoe on the
two regression tasks of `synthetic_mmoe` as the task correlation falls, over several seeds.

The paper's trend: with correlation 1.0 the models tie; as it falls, shared_bottom degrades most, and MMoE keeps
the lowest loss. Models follow the paper's sizes: 8 experts of 16 units (omoe, mmoe) or a shared block of 113 units
(shared_bottom, about the same parameters); towers of 8 units; Adam; configs/synthetic_mmoe.yaml otherwise, evaluated
once at the end (no early stopping).

    python benchmarks/synthetic_mmoe.py [--correlations 1.0,0.9,0.5,0.0] [--seeds 42,1,2] [--epochs 30]

Writes benchmarks/results/synthetic_mmoe.txt: mean test MSE per task (mean of the two ± std over seeds) and
training examples/s.
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
CONFIG = os.path.join(HERE, "..", "configs", "synthetic_mmoe.yaml")
VARIANTS = {
    "shared_bottom": ["model.architecture=shared_bottom", "model.experts.units=[113]"],
    "omoe": ["model.architecture=omoe"],
    "mmoe": [],
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--correlations", default="1.0,0.9,0.5,0.0")
    parser.add_argument("--seeds", default="42,1,2")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--name", default="synthetic_mmoe", help="results file name")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    correlations = [float(c) for c in args.correlations.split(",")]
    lines = [
        f"synthetic_mmoe (Ma et al. 2018), {args.epochs} epochs, seeds {seeds}, {os.cpu_count()} CPUs; test MSE "
        "averaged over the two tasks, mean ± std over seeds (lower is better)",
        f"{'correlation':>11} " + " ".join(f"{n:>22}" for n in VARIANTS),
    ]
    print(lines[0], flush=True)
    speed = {n: [] for n in VARIANTS}
    params = {}
    table = {}
    for p in correlations:
        row = []
        for name, overrides in VARIANTS.items():
            mse = []
            for seed in seeds:
                config = load_config(
                    CONFIG,
                    [
                        f"training.epochs={args.epochs}",
                        f"experiment.seed={seed}",
                        f"data.sources.synthetic.correlation={p}",
                        "logging.progress=none",
                        "logging.tensorboard=false",
                        "training.eval_every=100000",
                        *overrides,
                    ],
                )
                params[name] = count_params(build_components(config, training=False).model)
                metrics = train_in_scratch_dir(config)
                mse.append((metrics["tasks"]["task1"]["mse"] + metrics["tasks"]["task2"]["mse"]) / 2)
                speed[name].append(metrics["examples_per_sec"])
                print(f"  correlation {p} {name} seed {seed}: mse {mse[-1]:.4f}", flush=True)
            table[(p, name)] = statistics.mean(mse)
            row.append(f"{statistics.mean(mse):>13.4f} ± {statistics.stdev(mse) if len(mse) > 1 else 0:.4f}")
        lines.append(f"{p:>11} " + " ".join(f"{c:>22}" for c in row))
    lines.append("parameters: " + ", ".join(f"{n} {params[n]:,}" for n in VARIANTS))
    lines.append(
        "training examples/s (median over runs): "
        + ", ".join(f"{n} {statistics.median(v):,.0f}" for n, v in speed.items())
    )
    low, high = min(correlations), max(correlations)
    gain = {p: table[(p, "shared_bottom")] / table[(p, "mmoe")] for p in (low, high)}
    lines.append(f"shared_bottom MSE / mmoe MSE: {gain[high]:.3f} at correlation {high}, {gain[low]:.3f} at {low}")
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
