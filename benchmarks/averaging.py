"""The step cost of `training.ema_momentum`: one config trained with and without the moving average of the weights,
side by side in one process (interleaved repeats, medians), and their ratio.

Both variants are built from the same config and seed; one has `training.ema_momentum` (0.995 unless the config sets
it), the other none. Each repeat trains `--steps` more steps of each, alternating which goes first; evaluation is
off, so what differs is the update of the averages after each step.

    python benchmarks/averaging.py [--config configs/sst2_agnews_mmoe.yaml] [--steps 150] [--repeats 7]
                                   [--set KEY=VALUE ...] [--name averaging]

Writes benchmarks/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import moe_tf  # noqa: E402,F401  (first: it sets TensorFlow's environment, as the CLI runs)

# isort: split
import keras  # noqa: E402

from benchmarks.report import interleaved_seconds, train_for, write_results  # noqa: E402
from moe_tf.components import build_components  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.models import count_params  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "sst2_agnews_mmoe.yaml"))
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    parser.add_argument("--name", default="averaging")
    args = parser.parse_args()
    os.chdir(REPO)  # the shipped configs' data paths are relative to the repository root
    overrides = ["logging.progress=none", "logging.tensorboard=false", *args.set]
    configs = {"plain": load_config(args.config, [*overrides, "training.ema_momentum=null"])}
    momentum = load_config(args.config, overrides).training.ema_momentum or 0.995
    configs["averaged"] = load_config(args.config, [*overrides, f"training.ema_momentum={momentum}"])
    trainers, data, params = {}, None, 0
    for name, config in configs.items():
        keras.utils.set_random_seed(config.experiment.seed)
        parts = build_components(config, data=data)
        data, params = parts.data, count_params(parts.model)
        trainers[name] = parts.trainer()
        train_for(trainers[name], 20)  # warm-up: tracing, the input pipeline's first batches
    seconds = interleaved_seconds(trainers, args.steps, args.repeats)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    lines = [
        f"training.ema_momentum step cost: {os.path.relpath(args.config, REPO)}"
        f"{' with ' + ', '.join(args.set) if args.set else ''}, {params:,} trainable parameters averaged, "
        f"{args.steps} steps × {args.repeats} interleaved repeats, {os.cpu_count()} CPUs; median ms/step",
        *(
            f"{name:<9} {median[name] * 1e3:8.2f}  (repeats: "
            + ", ".join(f"{s * 1e3:.2f}" for s in seconds[name])
            + ")"
            for name in trainers
        ),
        f"ratio averaged/plain {median['averaged'] / median['plain']:.3f}",
    ]
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
