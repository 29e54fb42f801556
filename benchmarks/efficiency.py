"""How much of this machine's matmul throughput moe-tf's training step reaches (an MFU proxy), dense and top-1.

A larger MMoE (default: a 1,024-feature numeric input, a dense stem of 1,024 units, 16 experts of 1,024 units, a
gate and a linear head for each of two regression tasks, batch 1,024, Adam) trains through the composition root and
`Trainer.fit`, exactly as `moe-tf train` runs it. Its matmul FLOPs per step are counted from the model's kernels:
forward, the kernels' gradients and the gradients of every layer's input but the first (what backpropagation
computes), 2·M·K·N each. For the dense softmax gate every expert sees the whole batch once (both task gates mix
the same outputs); for top-1 routing (`switch`, capacity factor 1.0) each task gate routes every example, so each
expert sees its capacity ceil(batch / experts) of slots once per task gate.

The reference is a bare `tf.linalg.matmul` of exactly those shapes (the experts as one [batch, in] × [in,
experts·units] product when dense, as one batched [experts, gates · capacity, in] × [experts, in, units] product
when routed), run in one tf.function in the same process. Efficiency = (the step's matmul FLOPs / its time) / (the
bare matmuls' FLOPs / their time): everything else the step does (gates, routing, softmax, losses, Adam over every
parameter, the input pipeline) counts against it. The variants and their references alternate over the repeats;
medians. The last line is `ratio <dense efficiency>` (goal ≥ 0.5), the line before it the top-1 one.

    python benchmarks/efficiency.py [--experts 16] [--units 1024] [--width 1024] [--batch-size 1024] [--steps 5]
        [--set KEY=VALUE ...]
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

from benchmarks.report import train_for, write_results  # noqa: E402
from moe_tf.components import build_components  # noqa: E402
from moe_tf.config.loader import apply_override, validate_config  # noqa: E402
from moe_tf.models import routing  # noqa: E402

GATES = {
    "dense softmax": {"type": "softmax"},
    "top-1 (switch)": {"type": "switch", "capacity_factor": 1.0, "balance_loss": 0.01},
}


def config(gate: dict, args):
    raw = {
        "experiment": {"name": "efficiency", "seed": 0},
        "data": {"sources": {"synthetic": {"type": "synthetic_mmoe", "dim": args.width, "size": args.batch_size * 8}}},
        "tasks": [
            {"name": "task1", "dataset": "synthetic", "label": "y1", "type": "regression"},
            {"name": "task2", "dataset": "synthetic", "label": "y2", "type": "regression"},
        ],
        "model": {
            "architecture": "mmoe",
            "stems": {"numeric": {"type": "dense", "units": [args.units]}},
            "experts": {"count": args.experts, "units": [args.units]},
            "gate": gate,
            "tower": {"units": []},
            "normalize_numeric": False,
        },
        "training": {
            "batch_size": args.batch_size,
            "steps": 10**6,
            "log_every": args.steps,
            "optimizer": {"type": "adam", "learning_rate": 1e-4},
        },
        "logging": {"progress": "none", "tensorboard": False},
    }
    for assignment in args.set:
        apply_override(raw, assignment)
    return validate_config(raw)


def matmuls(model, batch: int, capacity: int | None) -> list[tuple[int, int, int, int]]:
    """The step's matmuls as (batch count, M, K, N): the forward product of every kernel, its kernel gradient, and
    its input gradient unless it reads the input. Expert kernels [E, K, N] act on the batch (dense: one pass for all
    gates) or on E × (capacity · gates reading the pool) slots (routed: each task gate routes every example)."""
    readers = {
        k.path: sum(group in view for view in level.views.values())
        for level in model.mixture.levels
        for group, pool in level.pools.items()
        for k in pool.kernels
    }
    shapes = []
    for v in model.trainable_variables:
        if len(v.shape) == 3:  # an expert pool's stacked kernels
            e, k, n = v.shape
            if capacity is None:  # forward, kernel gradient, input gradient
                shapes += [(1, batch, k, e * n), (1, k, batch, e * n), (1, batch, e * n, k)]
            else:
                slots = capacity * readers[v.path]
                shapes += [(e, slots, k, n), (e, k, slots, n), (e, slots, n, k)]
        elif len(v.shape) == 2:
            k, n = v.shape
            reads_input = "stem" in v.path
            shapes += [(1, batch, k, n), (1, k, batch, n)] + ([] if reads_input else [(1, batch, n, k)])
    return shapes


def flops(shapes) -> float:
    return float(sum(2 * b * m * k * n for b, m, k, n in shapes))


def bare(shapes, repeats_inside: int):
    """A tf.function running the matmuls `repeats_inside` times → seconds per pass."""
    operands = [
        (
            tf.random.stateless_normal([b, m, k] if b > 1 else [m, k], seed=[i, 0]),
            tf.random.stateless_normal([b, k, n] if b > 1 else [k, n], seed=[i, 1]),
        )
        for i, (b, m, k, n) in enumerate(shapes)
    ]

    @tf.function
    def run():
        total = tf.zeros(())
        for _ in tf.range(repeats_inside):
            for a, w in operands:
                total += tf.reduce_sum(tf.linalg.matmul(a, w)[..., :1])  # keeps every product alive
        return total

    def timed():
        start = time.perf_counter()
        run().numpy()
        return (time.perf_counter() - start) / repeats_inside

    return timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--units", type=int, default=1024)
    parser.add_argument("--width", type=int, default=1024, help="input features")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=5, help="training steps per timed repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--name", default="efficiency")
    args = parser.parse_args()

    variants = {}
    for name, gate in GATES.items():
        keras.utils.set_random_seed(0)
        parts = build_components(config(gate, args))
        trainer = parts.trainer()
        capacity = (
            None
            if gate["type"] == "softmax"
            else int(routing.capacity(args.batch_size, 1, args.experts, gate["capacity_factor"]))
        )  # as the gate sizes it
        shapes = matmuls(parts.model, args.batch_size, capacity)

        def step_seconds(trainer=trainer):
            return train_for(trainer, args.steps) / args.steps

        variants[name] = (flops(shapes), step_seconds, bare(shapes, args.steps))
    for _, step_seconds, reference in variants.values():  # warm-up: tracing, oneDNN primitive caches
        step_seconds()
        reference()
    times = {name: ([], []) for name in variants}
    for _ in range(args.repeats):
        for name, (_, step_seconds, reference) in variants.items():
            times[name][0].append(step_seconds())
            times[name][1].append(reference())
    lines = [
        f"MMoE: {args.width} inputs → dense stem {args.units} → {args.experts} experts of {args.units}, two "
        f"tasks; batch {args.batch_size}, Adam; {args.steps} steps x {args.repeats} interleaved repeats, medians; "
        f"{''.join('--set ' + a + '; ' for a in args.set)}TensorFlow {tf.__version__}, "
        f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS')}, {os.cpu_count()} CPUs",
        f"{'variant':<16} {'matmul GFLOP/step':>17} {'step ms':>8} {'step GFLOP/s':>12} {'bare ms':>8} "
        f"{'bare GFLOP/s':>12} {'efficiency':>10}",
    ]
    efficiency = {}
    for name, (work, _, _) in variants.items():
        step, ref = statistics.median(times[name][0]), statistics.median(times[name][1])
        efficiency[name] = ref / step
        lines.append(
            f"{name:<16} {work / 1e9:>17.1f} {step * 1e3:>8.1f} {work / step / 1e9:>12.1f} "
            f"{ref * 1e3:>8.1f} {work / ref / 1e9:>12.1f} {efficiency[name]:>10.3f}"
        )
    lines += [f"ratio top-1 {efficiency['top-1 (switch)']:.3f}", f"ratio {efficiency['dense softmax']:.3f}"]
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
