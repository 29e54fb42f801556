"""Examples/s of moe-tf's custom loop vs Keras `model.fit` on the identical model and data, in one process.

Both train the same MultiTaskModel (digits config: MMoE, 2 tasks) on the same tf.data pipeline with the same
optimizer; after a warm-up each is timed over several alternating repeats and the medians are compared.
The last line is `ratio <loop/fit>`. Results go to benchmarks/results/throughput.txt.

    python benchmarks/throughput.py [--steps 200] [--repeats 5] [--batch-size 64] [--steps-per-execution 1]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.data import build_task_data  # noqa: E402
from moe_tf.models import build_model  # noqa: E402
from moe_tf.training.optimizer import build_optimizer  # noqa: E402
from moe_tf.training.trainer import Trainer  # noqa: E402
from moe_tf.training.weightings import build_weighting  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


class NoHooks:
    def on_epoch_start(self, *args):
        pass

    def on_train_log(self, *args):
        pass

    def on_eval(self, *args):
        return False

    def on_checkpoint(self, *args):
        pass


class FitModel(keras.Model):
    """The same MultiTaskModel, returning only the task logits, for `compile`/`fit`."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def call(self, images, training=None):
        return self.inner(images, training=training)["outputs"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(HERE, "..", "configs", "digits_mmoe.yaml"))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps-per-execution", type=int, default=1)
    args = parser.parse_args()

    config = load_config(args.config, [f"training.batch_size={args.batch_size}", "training.log_every=1000000",
                                       f"training.steps_per_execution={args.steps_per_execution}"])
    keras.utils.set_random_seed(0)
    data = build_task_data(config)
    tasks = data.tasks
    total = args.steps * (args.repeats + 1)

    # The custom loop (Trainer.fit, exactly as training runs it, without logging/eval hooks).
    model = build_model(config.model, tasks, data.input_shape)
    weighting = build_weighting(config.training.weighting, tasks)
    optimizer = build_optimizer(config.training.optimizer, total, "float32")
    trainer = Trainer(model, weighting, optimizer, tf.distribute.get_strategy(), tasks, config.training)

    # Keras fit on an identical copy of the model, same data, same losses and weights.
    fit_inner = build_model(config.model, tasks, data.input_shape)
    fit_inner.set_weights(model.get_weights())
    fit_model = FitModel(fit_inner)
    losses = {t.name: keras.losses.SparseCategoricalCrossentropy(from_logits=True) if t.kind == "classification"
              else keras.losses.BinaryCrossentropy(from_logits=True) for t in tasks}
    fit_model.compile(optimizer=build_optimizer(config.training.optimizer, total, "float32"), loss=losses,
                      loss_weights={t.name: t.weight for t in tasks},
                      metrics={t.name: ["accuracy"] for t in tasks},
                      steps_per_execution=args.steps_per_execution)
    binary = [t.name for t in tasks if t.kind == "binary"]

    def fit_data(epoch):
        def labels(images, y):
            return images, {k: (tf.cast(v, tf.float32)[:, None] if k in binary else v) for k, v in y.items()}
        return data.train_dataset(args.batch_size, epoch).map(labels).repeat()

    def time_loop(repeat):
        config.training.steps = int(optimizer.iterations.numpy()) + args.steps
        start = time.perf_counter()
        trainer.fit(data, NoHooks())
        return args.steps * args.batch_size / (time.perf_counter() - start)

    def time_fit(repeat):
        ds = fit_data(repeat)
        start = time.perf_counter()
        fit_model.fit(ds, epochs=1, steps_per_epoch=args.steps, verbose=0)
        return args.steps * args.batch_size / (time.perf_counter() - start)

    time_loop(-1), time_fit(-1)  # warm-up: tracing and pipeline start
    loop, fit = [], []
    for r in range(args.repeats):
        loop.append(time_loop(r))
        fit.append(time_fit(r))
    lines = [
        f"config {os.path.relpath(args.config, os.getcwd())}, batch {args.batch_size}, {args.steps} steps x "
        f"{args.repeats} repeats, steps_per_execution {args.steps_per_execution}, "
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, {os.cpu_count()} CPUs",
        "loop examples/s: " + ", ".join(f"{v:,.0f}" for v in loop) + f" (median {statistics.median(loop):,.0f})",
        "fit  examples/s: " + ", ".join(f"{v:,.0f}" for v in fit) + f" (median {statistics.median(fit):,.0f})",
        f"ratio {statistics.median(loop) / statistics.median(fit):.3f}",
    ]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    suffix = "" if args.steps_per_execution == 1 else f"_spe{args.steps_per_execution}"
    with open(os.path.join(HERE, "results", f"throughput{suffix}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
