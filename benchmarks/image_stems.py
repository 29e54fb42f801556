"""Step time and examples/s of each image stem on one config's data, side by side in one process (interleaved
repeats, medians), and each as a ratio of the shipped conv stem.

The stems: the shipped conv stem (configs/fashion_mnist_mmoe.yaml), the same with batch norm, the residual stem as
ResNet-8 (`blocks: 1`) and ResNet-20 (`blocks: 3`), and Keras' MobileNetV3Small (random weights, 28×28 resized to
32×32). Each trains `--steps` steps per repeat with the rest of the model unchanged; evaluation is off.

    python benchmarks/image_stems.py [--config configs/fashion_mnist_mmoe.yaml] [--steps 40] [--repeats 5]
                                     [--batch-size 128] [--name image_stems]

Writes benchmarks/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import json
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

STEMS = {
    "conv": None,  # the config's own
    "conv_bn": {"type": "conv", "filters": [32, 64], "batch_norm": True},
    "resnet8": {"type": "resnet", "widths": [16, 32, 64], "blocks": 1},
    "resnet20": {"type": "resnet", "widths": [16, 32, 64], "blocks": 3},
    "mobilenet_v3_small": {"type": "keras_applications", "name": "MobileNetV3Small", "resize": [32, 32]},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default=os.path.join(REPO, "configs", "fashion_mnist_mmoe.yaml"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--name", default="image_stems")
    args = parser.parse_args()
    os.chdir(REPO)
    overrides = ["logging.progress=none", "logging.tensorboard=false", f"training.batch_size={args.batch_size}"]
    trainers, data, params = {}, None, {}
    for name, stem in STEMS.items():
        extra = [f"model.stem={json.dumps(stem)}"] if stem else []
        config = load_config(args.config, [*overrides, *extra])
        keras.utils.set_random_seed(config.experiment.seed)
        parts = build_components(config, data=data)
        data, params[name] = parts.data, count_params(parts.model)
        trainers[name] = parts.trainer()
        train_for(trainers[name], 5)  # warm-up: tracing, the input pipeline's first batches
    seconds = interleaved_seconds(trainers, args.steps, args.repeats, digits=1)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    lines = [
        f"image stems: {os.path.relpath(args.config, REPO)}, batch {args.batch_size}, {args.steps} steps × "
        f"{args.repeats} interleaved repeats, {os.cpu_count()} CPUs; medians",
        f"{'stem':<20} {'params':>10} {'ms/step':>9} {'examples/s':>11} {'× conv':>7}  repeats (ms/step)",
        *(
            f"{name:<20} {params[name]:>10,} {median[name] * 1e3:>9.1f} {args.batch_size / median[name]:>11,.0f} "
            f"{median[name] / median['conv']:>7.2f}  " + ", ".join(f"{s * 1e3:.1f}" for s in seconds[name])
            for name in trainers
        ),
    ]
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
