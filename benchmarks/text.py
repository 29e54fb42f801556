"""SST-2 and AG News (../shared/data): test accuracy of each alone and of both in one multi-dataset MMoE, over
seeds, all trained the same way from configs/sst2_agnews_mmoe.yaml (the single-task runs drop the other source and
task; same stem, experts, towers, optimizer and early stopping).

    python benchmarks/text.py [--seeds 42] [--only sst2,agnews,both] [--set KEY=VALUE ...] [--name text]

Writes benchmarks/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.report import train_in_scratch_dir, write_results  # noqa: E402
from moe_tf.config.loader import load_config, to_yaml, validate_config  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
CONFIG = os.path.join(REPO, "configs", "sst2_agnews_mmoe.yaml")
TASK_OF = {"sst2": "sentiment", "agnews": "topic"}


def variant(name: str, seed: int, overrides=()):
    """The config of `name` (sst2, agnews or both) with `seed` and `--set` overrides."""
    import yaml

    config = load_config(
        CONFIG, [f"experiment.seed={seed}", "logging.progress=none", "logging.tensorboard=false", *overrides]
    )
    if name == "both":
        return config
    raw = yaml.safe_load(to_yaml(config))
    raw["data"]["sources"] = {name: raw["data"]["sources"][name]}
    raw["tasks"] = [t for t in raw["tasks"] if t["dataset"] == name]
    raw["training"]["early_stopping"]["monitor"] = f"eval/{TASK_OF[name]}/loss"
    return validate_config(raw)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="42")
    parser.add_argument("--only", default="sst2,agnews,both")
    parser.add_argument("--set", action="append", default=[], help="a config override for every run")
    parser.add_argument("--name", default="text")
    args = parser.parse_args()
    os.chdir(REPO)  # the config's data paths are relative to the repository root
    seeds = [int(s) for s in args.seeds.split(",")]
    names = args.only.split(",")
    results = {n: {"sentiment": [], "topic": []} for n in names}
    steps = {n: [] for n in names}
    for name in names:
        for seed in seeds:
            metrics = train_in_scratch_dir(variant(name, seed, args.set))
            for task, m in metrics["tasks"].items():
                results[name][task].append(m["accuracy"])
            steps[name].append(metrics["step"])
            print(
                f"  {name} seed {seed}: "
                + ", ".join(f"{t} {m['accuracy']:.4f}" for t, m in metrics["tasks"].items())
                + f" ({metrics['step']} steps)",
                flush=True,
            )

    def standard_error(values):
        return statistics.stdev(values) / len(values) ** 0.5

    def cell(values):
        if not values:
            return "-"
        spread = f" ± {statistics.stdev(values):.4f} (s.e. {standard_error(values):.4f})" if len(values) > 1 else ""
        return f"{statistics.mean(values):.4f}{spread}"

    lines = [
        f"SST-2 (test: GLUE dev, 872) and AG News (test: 7,600; trained on its 10k file), configs/"
        f"sst2_agnews_mmoe.yaml{' with ' + ', '.join(args.set) if args.set else ''}, seeds {seeds}, "
        f"{os.cpu_count()} CPUs; test accuracy, mean ± sample sd (standard error of the mean)",
        f"{'run':<8} {'sentiment':>30} {'topic':>30} {'steps':>8}",
    ]
    for name in names:
        lines.append(
            f"{name:<8} {cell(results[name]['sentiment']):>30} {cell(results[name]['topic']):>30} "
            f"{statistics.mean(steps[name]):>8.0f}"
        )
    lines.append(f"per seed ({','.join(map(str, seeds))}):")
    for name in names:
        for task, values in results[name].items():
            if values:
                lines.append(f"{name} {task}: " + " ".join(f"{v:.4f}" for v in values))
    if "both" in results:
        for single, task in TASK_OF.items():
            if single in results and results[single][task]:
                diffs = [b - a for a, b in zip(results[single][task], results["both"][task])]  # paired by seed
                paired = (
                    f" (paired by seed: standard error {standard_error(diffs) * 100:.2f})" if len(diffs) > 1 else ""
                )
                lines.append(f"{task}: both - {single} alone = {statistics.mean(diffs) * 100:+.2f} points{paired}")
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
