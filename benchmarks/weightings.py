"""Task weightings side by side: step time relative to `fixed`, and per-task test accuracy over seeds.

    python benchmarks/weightings.py time [--steps 30 --repeats 5]        # Fashion-MNIST MMoE config
    python benchmarks/weightings.py accuracy [--config digits_parity] [--seeds 42,1,2] [--epochs N]

`time` builds every method on configs/fashion_mnist_mmoe.yaml, warms each up, then times `--steps` single training
steps per method in `--repeats` interleaved rounds (machines are shared and noisy: the medians are compared) and
prints each method's median step time over `fixed`'s. Writes results/weightings_step_time.txt.

`accuracy` trains every method from the same config and seeds and prints test accuracy mean ± std per task:
`digits_parity` is configs/digits_mmoe.yaml with the tasks digit (10 classes) and parity (odd/even), which share
little; `fashion_mnist` is configs/fashion_mnist_mmoe.yaml. Writes results/weightings_<config>.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import moe_tf  # noqa: E402,F401  (first: it sets TensorFlow's environment, as the CLI runs)

# isort: split
import tensorflow as tf  # noqa: E402

from benchmarks.report import train_in_scratch_dir, write_results  # noqa: E402
from moe_tf.components import build_components  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIGS = {
    "fashion_mnist": ("fashion_mnist_mmoe.yaml", []),
    "digits_parity": (
        "digits_mmoe.yaml",
        [
            "tasks[1].name=parity",
            "tasks[1].label_map=[0,1,0,1,0,1,0,1,0,1]",
            "tasks[1].class_names=[even,odd]",
            "tasks[1].weight=1.0",
        ],
    ),
}
METHODS = {
    "fixed": "fixed",
    "uncertainty": "uncertainty",
    "dwa": "dwa",
    "rlw": "rlw",
    "famo": "famo",
    "gradnorm": "gradnorm",
    "pcgrad": "pcgrad",
    "mgda": "mgda",
    "mgda_ub": "{type: mgda, upper_bound: true}",
    "cagrad": "cagrad",
}


def config_for(name: str, method: str, extra=()):
    path, overrides = CONFIGS[name]
    return load_config(
        os.path.join(HERE, "..", "configs", path),
        [*overrides, f"training.weighting={METHODS[method]}", "logging.progress=none", *extra],
    )


def time_methods(args) -> None:
    trainers, data = {}, None
    for method in METHODS:
        parts = build_components(config_for("fashion_mnist", method), data=data)
        data = parts.data
        trainer = parts.trainer()
        iterator = iter(
            trainer.strategy.experimental_distribute_dataset(data.train_dataset(trainer.global_batch_size, 0, 10**6))
        )
        for _ in range(3):  # trace and warm up
            trainer.train_chunk(iterator, tf.constant(1))
        trainers[method] = (trainer, iterator)
        print(f"built {method}", flush=True)
    seconds = {m: [] for m in METHODS}
    for repeat in range(args.repeats):
        for method, (trainer, iterator) in trainers.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                trainer.train_chunk(iterator, tf.constant(1))
            trainer.read_and_reset_sums()  # waits for the steps to finish
            seconds[method].append((time.perf_counter() - start) / args.steps)
        print(f"repeat {repeat + 1}/{args.repeats} done", flush=True)
    base = statistics.median(seconds["fixed"])
    lines = [
        f"Fashion-MNIST MMoE (configs/fashion_mnist_mmoe.yaml, batch {trainers['fixed'][0].global_batch_size}),"
        f" {os.cpu_count()} CPUs, {args.steps} steps × {args.repeats} interleaved repeats; median step time",
        f"{'method':<12} {'ms/step':>8} {'× fixed':>8}   (each repeat, ms)",
    ]
    for method, values in seconds.items():
        med = statistics.median(values)
        lines.append(
            f"{method:<12} {med * 1e3:>8.1f} {med / base:>8.2f}   " + ", ".join(f"{v * 1e3:.1f}" for v in values)
        )
    write_results("weightings_step_time", lines)


def accuracy(args) -> None:
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = [f"training.epochs={args.epochs}"] if args.epochs else []
    first = config_for(args.config, "fixed", extra)
    tasks = [t.name for t in first.tasks]
    lines = [
        f"{args.config}: test accuracy mean ± std over seeds {seeds}, {first.training.epochs} epochs, "
        f"{os.cpu_count()} CPUs",
        f"{'method':<12} " + " ".join(f"{t:>17}" for t in tasks) + f" {'s/run':>7}",
    ]
    print(lines[0], flush=True)
    for method in [m for m in METHODS if not args.only or m in args.only.split(",")]:
        acc, seconds = {t: [] for t in tasks}, []
        for seed in seeds:
            config = config_for(args.config, method, [*extra, f"experiment.seed={seed}"])
            metrics = train_in_scratch_dir(config)
            for t in tasks:
                acc[t].append(metrics["tasks"][t]["accuracy"])
            seconds.append(metrics["train_seconds"])
        cell = lambda v: f"{statistics.mean(v):.4f} ± {statistics.stdev(v) if len(v) > 1 else 0.0:.4f}"  # noqa: E731
        lines.append(
            f"{method:<12} " + " ".join(f"{cell(acc[t]):>17}" for t in tasks) + f" {statistics.median(seconds):>7.1f}"
        )
        print(lines[-1], flush=True)
    write_results(f"weightings_{args.config}", lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    t = sub.add_parser("time")
    t.add_argument("--steps", type=int, default=30)
    t.add_argument("--repeats", type=int, default=5)
    a = sub.add_parser("accuracy")
    a.add_argument("--config", choices=sorted(CONFIGS), default="digits_parity")
    a.add_argument("--seeds", default="42,1,2")
    a.add_argument("--epochs", type=int, default=0, help="0: the config's")
    a.add_argument("--only", default="", help="comma-separated methods (default: all)")
    args = parser.parse_args()
    tf.get_logger().setLevel("ERROR")
    time_methods(args) if args.mode == "time" else accuracy(args)


if __name__ == "__main__":
    main()
