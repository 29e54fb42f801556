"""Does sparse routing save compute? Train-step time of one expert level with 16 experts, dense softmax vs top-k
(k = 1, 2, 4) and switch, with the same expert size, in one process.

Each variant is a two-task MMoE level (moe_tf.models.mixture.ExpertLevel, exactly as the model builds it) on a
[batch, width] input, followed by a linear head per task; a train step is forward, backward and an SGD update in
one tf.function. Variants run interleaved over several repeats after a warm-up and the medians are compared.
Capacity factor 1.0 for the top-k variants (the classic "no slack" setting) and the switch default (1.25).
The last line is `ratio <top-1 step time / dense step time>` (goal ≤ 0.25; top-2 ≤ 0.4).
Results go to benchmarks/results/sparse_scaling.txt (or `--name`).

    python benchmarks/sparse_scaling.py [--experts 16] [--width 256] [--units 512,256] [--batch-size 1024]
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
import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks.report import write_results  # noqa: E402
from moe_tf.models.mixture import ExpertLevel  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TASKS = ["a", "b"]


def make_step(gate: dict, args):
    level = ExpertLevel(TASKS, args.experts, expert_units=args.units, gate=gate)
    heads = {t: keras.layers.Dense(1) for t in TASKS}
    x = tf.random.stateless_normal([args.batch_size, args.width], seed=[1, 2])
    y = tf.random.stateless_normal([args.batch_size, 1], seed=[3, 4])
    out, _ = level({"shared": x}, training=True)
    for t in TASKS:
        heads[t](out[t])
    variables = level.trainable_variables + [v for h in heads.values() for v in h.trainable_variables]
    opt = keras.optimizers.SGD(0.001)
    opt.build(variables)

    @tf.function
    def step(n):
        for _ in tf.range(n):
            with tf.GradientTape() as tape:
                out, routes = level({"shared": x}, training=True)
                loss = tf.add_n([tf.reduce_mean(tf.square(heads[t](out[t]) - y)) for t in TASKS])
                loss += tf.add_n([v for r in routes.values() for v in r["aux"].values()] or [0.0])
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    return step


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--units", default="512,256")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=20, help="steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--name", default="sparse_scaling", help="results/<name>.txt")
    args = parser.parse_args()
    args.units = [int(u) for u in args.units.split(",")]
    keras.utils.set_random_seed(0)
    variants = {"dense softmax": {"type": "softmax"}}
    for k in (1, 2, 4):
        variants[f"top-{k}"] = {"type": "noisy_top_k", "k": k, "capacity_factor": 1.0}
    variants["switch"] = {"type": "switch"}
    steps = {name: make_step(gate, args) for name, gate in variants.items()}
    n = tf.constant(args.steps)
    for step in steps.values():  # trace and warm up
        step(n)
    times = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, step in steps.items():
            started = time.perf_counter()
            step(n).numpy()
            times[name].append((time.perf_counter() - started) / args.steps)
    dense = statistics.median(times["dense softmax"])
    lines = [
        f"{args.experts} experts of {args.units} on width {args.width}, batch {args.batch_size}, two tasks "
        f"(a gate each); {args.steps} steps × {args.repeats} repeats, medians",
        f"{'variant':<14} {'ms/step':>9} {'examples/s':>11} {'vs dense':>9}",
    ]
    for name in variants:
        t = statistics.median(times[name])
        lines.append(f"{name:<14} {t * 1e3:>9.2f} {args.batch_size / t:>11,.0f} {t / dense:>9.3f}")
    lines.append(f"ratio top-2 {statistics.median(times['top-2']) / dense:.3f}")
    lines.append(f"ratio {statistics.median(times['top-1']) / dense:.3f}")
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
