"""Step time of a two-modality model (Fashion-MNIST images + numeric or text) against its one-modality parts.

Three models with the same trunk, experts and towers are trained side by side in one process:
  - images: Fashion-MNIST (IDX, conv stem [32, 64]) with its task `item`;
  - other:  `--other numeric`: a generated tabular npz (dense stem [64]) with tasks `kind` and `score`;
            `--other text`: SST-2 from ../shared/data (text CNN stem) with its task `sentiment`;
  - both:   the two sources in one model, `uniform` sampling (each batch from one source, p = 0.5 each).
Each batch of `both` comes from one source, and the stem of the other source's input does not run, so its step time
should be close to p · t_images + (1 - p) · t_other, not t_images + t_other (what every example paying for every
stem would cost). After a warm-up, each model trains `--steps` steps per repeat, repeats are interleaved, medians are
compared. Writes benchmarks/results/multi_modal[_text].txt; the last line is `ratio <t_both / (p·t)>`.

    python benchmarks/multi_modal.py [--other numeric|text] [--steps 100] [--repeats 7] [--batch-size 64]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import moe_tf  # noqa: E402,F401  (first: it sets TensorFlow's environment, as the CLI runs)

# isort: split
import tensorflow as tf  # noqa: E402

from benchmarks.report import train_for, write_results  # noqa: E402
from moe_tf.components import build_components  # noqa: E402
from moe_tf.config.loader import validate_config  # noqa: E402
from moe_tf.testing.files import write_tabular_npz  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
FASHION = "/usr/share/datasets/fashion-mnist"
SST2 = os.path.join(HERE, "..", "..", "shared", "data", "sst2")


def config(sources, tasks, batch_size, steps):
    return validate_config(
        {
            "experiment": {"name": "multi_modal", "seed": 0},
            "data": {"sources": sources, "sampling": {"type": "uniform"}, "shuffle_buffer": 10_000},
            "tasks": tasks,
            "model": {
                "stems": {
                    "image": {"type": "conv", "filters": [32, 64]},
                    "numeric": {"type": "dense", "units": [64]},
                    "text": {
                        "type": "text_cnn",
                        "max_tokens": 30000,
                        "sequence_length": 64,
                        "embedding_dim": 64,
                        "filters": 64,
                    },
                },
                "trunk": {"units": [128]},
                "experts": {"count": 4, "units": [64]},
                "tower": {"units": [32]},
            },
            "training": {"steps": steps, "batch_size": batch_size, "log_every": 50},
            "logging": {"progress": "none", "tensorboard": False},
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--other", choices=["numeric", "text"], default="numeric")
    args = parser.parse_args()
    if not os.path.isdir(FASHION):
        sys.exit(f"{FASHION} not found: apt-get install dataset-fashion-mnist")
    images = {"fashion": {"type": "idx", "path": FASHION}}
    image_tasks = [{"name": "item", "dataset": "fashion"}]
    if args.other == "numeric":
        npz = write_tabular_npz(os.path.join(tempfile.mkdtemp(), "tab.npz"), n=20_000)
        other = {"tab": {"type": "npz", "path": npz, "features": ["x"], "labels": ["kind", "score"]}}
        other_tasks = [
            {"name": "kind", "dataset": "tab", "label": "kind", "type": "binary"},
            {"name": "score", "dataset": "tab", "label": "score", "type": "regression"},
        ]
        title = "Fashion-MNIST images + numeric npz"
    else:
        other = {
            "sst2": {
                "type": "tsv",
                "train": f"{SST2}/train.tsv",
                "test": f"{SST2}/test.tsv",
                "text": {"text": "sentence"},
                "labels": ["label"],
            }
        }
        other_tasks = [{"name": "sentiment", "dataset": "sst2", "label": "label", "type": "binary"}]
        title = "Fashion-MNIST images + SST-2 text (text CNN)"
    total = args.steps * (args.repeats + 1)
    variants = {
        "images": config(images, image_tasks, args.batch_size, total),
        args.other: config(other, other_tasks, args.batch_size, total),
        "both": config({**images, **other}, image_tasks + other_tasks, args.batch_size, total),
    }
    trainers = {name: build_components(cfg).trainer() for name, cfg in variants.items()}

    def timed(trainer):
        return train_for(trainer, args.steps) / args.steps * 1000  # ms per step

    for trainer in trainers.values():
        timed(trainer)  # warm-up: tracing and pipeline start
    results = {name: [] for name in trainers}
    for _ in range(args.repeats):
        for name, trainer in trainers.items():
            results[name].append(timed(trainer))
    median = {name: statistics.median(v) for name, v in results.items()}
    schedule = trainers["both"].data.source_schedule(total)
    p_images = float((schedule == 0).mean())
    t_other = median[args.other]
    expected = p_images * median["images"] + (1 - p_images) * t_other
    lines = [
        f"{title}, batch {args.batch_size}, {args.steps} steps x {args.repeats} repeats, "
        f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs",
        *(
            f"{name:<8} ms/step: " + ", ".join(f"{v:.2f}" for v in values) + f" (median {median[name]:.2f})"
            for name, values in results.items()
        ),
        f"share of image batches in 'both': {p_images:.3f}",
        f"if every example paid for both stems: {median['images'] + t_other:.2f} ms/step",
        f"if each batch pays only for its source's stem: {expected:.2f} ms/step",
        f"ratio both / (images + {args.other}) {median['both'] / (median['images'] + t_other):.3f}",
        f"ratio {median['both'] / expected:.3f}",
    ]
    write_results("multi_modal" if args.other == "numeric" else "multi_modal_text", lines)


if __name__ == "__main__":
    main()
