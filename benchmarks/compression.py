"""Quantised TFLite exports and a distilled student of the Fashion-MNIST MMoE, measured on its test split.

1. The teacher: configs/fashion_mnist_mmoe.yaml trained for `--epochs`, exported.
2. Each quantisation mode (`moe-tf export RUN --format tflite --quantize MODE`): file size, its ratio to the float32
   TFLite file, and per task the test accuracy of the LiteRT model against the SavedModel's (goal: int8 within one
   point, 4x smaller than float32).
3. A small shared-bottom student (no experts, narrow stem and trunk) trained for the same epochs on the labels alone
   and with `--distill-from` the teacher (same seed, same batches): parameters, export size, test accuracy per task.

Writes benchmarks/results/compression.txt and benchmarks/results/distillation.txt.

    python benchmarks/compression.py [--epochs 3] [--output-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.report import write_results  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.export.tflite import QUANTIZE_MODES  # noqa: E402
from moe_tf.models import count_params  # noqa: E402
from moe_tf.run import export_tflite, train  # noqa: E402
from moe_tf.run_dir import directory_bytes  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "fashion_mnist_mmoe.yaml")
STUDENT = [
    "model.architecture=shared_bottom",
    "model.stem.filters=[8,16]",
    "model.trunk.units=[32]",
    "model.tower.units=[16]",
]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--output-dir", help="keep the runs here (default: a temporary directory)")
    args = parser.parse_args()
    root = args.output_dir or tempfile.mkdtemp(prefix="moe_tf_compression_")
    quiet = [f"training.epochs={args.epochs}", "logging.progress=none"]

    teacher_dir = os.path.join(root, "teacher")
    started = time.perf_counter()
    teacher = train(load_config(CONFIG, quiet), teacher_dir)
    print(f"teacher trained in {time.perf_counter() - started:.0f} s: {teacher['tasks']}")
    lines = [
        f"Fashion-MNIST MMoE ({CONFIG.split('/')[-1]}, {args.epochs} epochs, seed 42), test split (10,000)",
        f"{'mode':<9}{'KiB':>9}{'x float':>9}"
        + "".join(f"{t + ' SM':>14}{t + ' TFLite':>17}{'delta':>8}" for t in teacher["tasks"]),
    ]
    for mode in QUANTIZE_MODES:
        _, entry = export_tflite(teacher_dir, os.path.join(teacher_dir, "tflite"), quantize=mode)
        cells = "".join(
            f"{m['saved_model']:>14.4f}{m['tflite']:>17.4f}{100 * m['delta']:>+7.2f}p" for m in entry["tasks"].values()
        )
        lines.append(f"{mode:<9}{entry['bytes'] / 1024:>9.1f}{entry['size_ratio_to_float']:>9.2f}{cells}")
    lines.append(
        f"SavedModel directory: {entry['saved_model_bytes'] / 1024:.1f} KiB; delta: TFLite - SavedModel "
        "accuracy in points; x float: size of the float32 TFLite file / this one"
    )
    write_results("compression", lines)

    runs = {"teacher": (teacher_dir, teacher)}
    for name in ("student alone", "student distilled"):
        config = load_config(CONFIG, quiet + STUDENT)
        if name == "student distilled":
            config.training.distillation.teacher = teacher_dir
        run_dir = os.path.join(root, name.replace(" ", "_"))
        runs[name] = (run_dir, train(config, run_dir))
    d = load_config(CONFIG).training.distillation
    lines = [
        f"Distillation on Fashion-MNIST ({args.epochs} epochs each, seed 42; temperature {d.temperature:g}, "
        f"alpha {d.alpha:g}); student: {' '.join(STUDENT)}",
        f"{'model':<19}{'params':>9}{'export KiB':>12}" + "".join(f"{t + ' acc':>14}" for t in teacher["tasks"]),
    ]
    for name, (run_dir, metrics) in runs.items():
        params = _params(run_dir)
        size = directory_bytes(os.path.join(run_dir, "export")) / 1024
        accs = "".join(f"{m['accuracy']:>14.4f}" for m in metrics["tasks"].values())
        lines.append(f"{name:<19}{params:>9,}{size:>12.1f}{accs}")
    report = json.load(open(os.path.join(runs["student distilled"][0], "distillation.json")))
    lines.append(f"teacher / student parameters: {report['params']['teacher'] / report['params']['student']:.1f}x")
    write_results("distillation", lines)


def _params(run_dir: str) -> int:
    from moe_tf.components import restore_components

    parts, _ = restore_components(run_dir)
    return count_params(parts.model)


if __name__ == "__main__":
    main()
