"""Examples/s of moe-tf's custom loop vs Keras `model.fit` on the identical model and data, in one process.

Both train the same MultiTaskModel (digits config: MMoE, 2 tasks) on the same tf.data pipeline with the same
optimizer; after a warm-up each variant is timed over several interleaved repeats and the medians are compared.
Four variants run side by side:
  - the loop as training runs it (`steps_per_execution: auto`: each stretch between two log steps, here
    `training.log_every`, is one graph call);
  - the loop with one step per graph call (`steps_per_execution: 1`);
  - `fit` as Keras compiles it by default (one step per call);
  - `fit` with `steps_per_execution` = the config's `log_every` (what the loop's `auto` does).
`--jit-compile` (default auto: no XLA on a CPU-only machine, both for the loop and for Keras) applies to all four.
The last line is `ratio <loop/fit>` for the two defaults. Results go to benchmarks/results/throughput[_jit].txt.

    python benchmarks/throughput.py [--steps 200] [--repeats 9] [--batch-size 64] [--jit-compile auto|true|false]
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

from benchmarks.report import train_for  # noqa: E402
from moe_tf.components import build_components  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.training.optimizer import build_schedule  # noqa: E402
from moe_tf.training.replicas import resolve_jit_compile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class FitModel(keras.Model):
    """The same MultiTaskModel, returning only the task logits, for `compile`/`fit`."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def call(self, inputs, training=None):
        return self.inner(inputs, training=training)["outputs"]


def main(argv: list[str] | None = None) -> float:
    """Runs the comparison (argv: this script's arguments; default sys.argv) → the loop/fit ratio of the defaults."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(HERE, "..", "configs", "digits_mmoe.yaml"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--jit-compile", choices=["auto", "true", "false"], default="auto")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--name", default=None, help="results/<name>.txt (default: throughput[_jit_<value>])")
    args = parser.parse_args(argv)

    total = args.steps * (args.repeats + 1)
    config = load_config(
        args.config,
        [
            f"training.batch_size={args.batch_size}",
            f"training.steps={total}",
            f"training.jit_compile={args.jit_compile}",
            *args.set,
        ],
    )
    jit = config.training.jit_compile
    chunk = config.training.log_every
    keras.utils.set_random_seed(0)
    first = build_components(config)  # the composition root, exactly as `moe-tf train` builds
    data, tasks = first.data, first.data.tasks
    initial = first.model.get_weights()

    def make_trainer(steps_per_execution):
        """The custom loop (Trainer.fit, exactly as training runs it, without logging/eval hooks)."""
        variant = config.model_copy(deep=True)
        variant.training.steps_per_execution = steps_per_execution
        return build_components(variant, data=data, initial_weights=initial).trainer()

    def make_fit_model(steps_per_execution):
        """Keras fit on an identical copy of the model, same data, same losses and weights."""
        fit_inner = build_components(config, data=data, initial_weights=initial, training=False).model
        fit_model = FitModel(fit_inner)
        losses = {
            t.name: keras.losses.SparseCategoricalCrossentropy(from_logits=True)
            if t.kind == "classification"
            else keras.losses.BinaryCrossentropy(from_logits=True)
            for t in tasks
        }
        # a plain Keras optimizer, which all-reduces inside apply_gradients as fit expects
        optimizer = keras.optimizers.Adam(build_schedule(config.training.optimizer, total))
        fit_model.compile(
            optimizer=optimizer,
            loss=losses,
            loss_weights={t.name: t.weight for t in tasks},
            metrics={t.name: ["accuracy"] for t in tasks},
            steps_per_execution=steps_per_execution,
            jit_compile=jit,
        )
        return fit_model

    binary = [t.name for t in tasks if t.kind == "binary"]

    per_epoch = data.steps_per_epoch(args.batch_size)

    def fit_data(epoch):
        def labels(inputs, y, _):
            return inputs, {k: (tf.cast(v, tf.float32)[:, None] if k in binary else v) for k, v in y.items()}

        start = max(epoch, 0) * per_epoch
        return data.train_dataset(args.batch_size, start).map(labels)

    def time_loop(trainer):
        def timed(repeat):
            return args.steps * args.batch_size / train_for(trainer, args.steps)

        return timed

    def time_fit(fit_model):
        def timed(repeat):
            start = time.perf_counter()  # both sides build their input pipeline inside the timed region
            fit_model.fit(fit_data(repeat), epochs=1, steps_per_epoch=args.steps, verbose=0)
            return args.steps * args.batch_size / (time.perf_counter() - start)

        return timed

    variants = {
        "loop (steps_per_execution auto)": time_loop(make_trainer("auto")),
        "loop (steps_per_execution 1)": time_loop(make_trainer(1)),
        "fit (Keras default: 1)": time_fit(make_fit_model(1)),
        f"fit (steps_per_execution {chunk})": time_fit(make_fit_model(chunk)),
    }
    for timed in variants.values():
        timed(-1)  # warm-up: tracing, compilation and pipeline start
    results = {name: [] for name in variants}
    for r in range(args.repeats):  # interleaved, so load changes on the machine hit every variant alike
        for name, timed in variants.items():
            results[name].append(timed(r))
    median = {name: statistics.median(v) for name, v in results.items()}
    loop, loop_one, fit, fit_chunk = (median[name] for name in variants)
    resolved = "XLA" if resolve_jit_compile(jit, tf.distribute.get_strategy()) else "no XLA"
    lines = [
        f"config {os.path.relpath(args.config, os.getcwd())}, batch {args.batch_size}, {args.steps} steps x "
        f"{args.repeats} repeats, jit_compile {args.jit_compile} ({resolved}), "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs",
        *(
            f"{name:<34} examples/s: " + ", ".join(f"{v:,.0f}" for v in values) + f" (median {median[name]:,.0f})"
            for name, values in results.items()
        ),
        f"ratio loop/fit, one step per call on both sides {loop_one / fit:.3f}",
        f"ratio loop/fit, {chunk} steps per call on both sides {loop / fit_chunk:.3f}",
        f"ratio {loop / fit:.3f}",
    ]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    name = args.name or ("throughput" + ("" if args.jit_compile == "auto" else f"_jit_{args.jit_compile}"))
    with open(os.path.join(HERE, "results", f"{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return loop / fit


if __name__ == "__main__":
    main()
