"""A budget-limited search on Fashion-MNIST, and its best config against the shipped one at the same budget.

1. `moe-tf search` with configs/search/fashion_mnist_mmoe.yaml over configs/fashion_mnist_mmoe.yaml for `--trials`
   trials of `--steps` steps each (evaluated every `--eval-every` steps for the median pruner). Trial 0 is the shipped
   values (enqueued), so the search's gain at the trial budget is trial 0 against the best trial.
2. The best config and the shipped config each trained for `--final-epochs` epochs (the same budget, seed 42), their
   test item accuracy compared.

Writes benchmarks/results/search.txt (the summary table, wall times, the comparison).

    python benchmarks/search.py [--trials 30] [--steps 400] [--eval-every 100] [--final-epochs 3] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.report import train_in_scratch_dir, write_results  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.search.study import search  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "fashion_mnist_mmoe.yaml")
SPACE = os.path.join(HERE, "..", "configs", "search", "fashion_mnist_mmoe.yaml")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--final-epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", help="the study directory (default: a temporary one)")
    args = parser.parse_args()
    study_dir = args.output_dir or os.path.join(tempfile.mkdtemp(prefix="moe_tf_search_"), "study")
    budget = [f"training.steps={args.steps}", f"training.eval_every={args.eval_every}", "logging.tensorboard=false"]
    started = time.perf_counter()
    result = search(CONFIG, SPACE, args.trials, study_dir, budget, seed=args.seed)
    search_seconds = time.perf_counter() - started
    study = result["study"]
    states = [t.state.name for t in study.trials]
    best, baseline = study.best_trial, study.trials[0]
    lines = [
        f"{args.trials} trials of {args.steps} steps (batch 64) on Fashion-MNIST, eval every {args.eval_every} "
        f"steps, median pruner; TPE seed {args.seed}; wall time {search_seconds / 60:.1f} min "
        f"({states.count('COMPLETE')} complete, {states.count('PRUNED')} pruned, {states.count('FAIL')} failed)",
        open(os.path.join(study_dir, "summary.txt")).read().rstrip(),
        f"at the trial budget, eval item accuracy: shipped values (trial 0) {baseline.value:.4f}, "
        f"best (trial {best.number}) {best.value:.4f}",
    ]
    # best.yaml keeps the search's --set overrides, the trial budget `training.steps` among them: lifted here
    final = [
        f"training.epochs={args.final_epochs}",
        "training.steps=null",
        "training.eval_every=0",
        "logging.progress=none",
        "logging.tensorboard=false",
    ]
    shipped = train_in_scratch_dir(load_config(CONFIG, final))
    tuned = train_in_scratch_dir(load_config(os.path.join(study_dir, "best.yaml"), final))
    acc = lambda metrics, task: metrics["tasks"][task]["accuracy"]  # noqa: E731
    lines.append(
        f"{args.final_epochs} epochs each, test item accuracy: shipped {acc(shipped, 'item'):.4f}, best "
        f"config {acc(tuned, 'item'):.4f} (category: {acc(shipped, 'category'):.4f} vs "
        f"{acc(tuned, 'category'):.4f})"
    )
    write_results("search", lines)


if __name__ == "__main__":
    main()
