"""Entire-space multi-task model (ESMM, Ma et al. SIGIR 2018) against CVR models trained on clicked impressions only,
on `synthetic_ctr_cvr` (conversions observed only after clicks; the generator knows every impression's outcome).

The paper's central claim: judged over **all impressions** (where a CVR model is used), ESMM's CVR, trained through
CTCVR = CTR × CVR on the whole space, beats a CVR model trained on the clicked sample. Variants, one model each
(configs/esmm_synthetic.yaml otherwise):

- `esmm`: tasks ctr (weight 1), cvr (a factor, no loss of its own), ctcvr = ctr × cvr;
- `cvr_clicked`: a single-task CVR model on the clicked impressions (the other rows' labels are missing);
- `ctr_cvr_clicked`: CTR and CVR in one shared-bottom model, CVR's loss on the clicked impressions (the naive
  multi-task baseline: the embeddings see every impression, the CVR tower only clicks).

    python benchmarks/esmm.py [--seeds 42,1,2,3,4] [--epochs 3]

Writes benchmarks/results/esmm.txt: per variant, CVR ROC AUC over all test impressions (against `conversion_all`)
and over the clicked ones (against `conversion`), mean ± standard error over seeds.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from benchmarks.report import write_results  # noqa: E402
from moe_tf.components import restore_components  # noqa: E402
from moe_tf.config.loader import load_config  # noqa: E402
from moe_tf.run import train  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CONFIG = os.path.join(HERE, "..", "configs", "esmm_synthetic.yaml")
CTR = "{name: ctr, dataset: impressions, label: click, type: binary, weight: 1}"
CVR = "{name: cvr, dataset: impressions, label: conversion, type: binary, weight: 1}"
VARIANTS = {
    "esmm": [],
    "cvr_clicked": [f"tasks=[{CVR}]", "model.architecture=single_task"],
    "ctr_cvr_clicked": [f"tasks=[{CTR}, {CVR}]"],
}


def cvr_aucs(run_dir: str) -> tuple[float, float]:
    """CVR ROC AUC of a trained run on the test split: over every impression, and over the clicked ones."""
    parts, _ = restore_components(run_dir)
    x, y = parts.data.sources["impressions"].arrays["test"]
    logits = []
    for start in range(0, len(y["click"]), 8192):
        batch = {k: tf.constant(v[start : start + 8192]) for k, v in x.items()}
        logits.append(parts.model(batch, training=False)["outputs"]["cvr"].numpy()[:, 0])
    score = np.concatenate(logits)
    clicked = y["click"] == 1
    return roc_auc_score(y["conversion_all"], score), roc_auc_score(y["conversion"][clicked], score[clicked])


def mean_se(values: list[float]) -> str:
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {se:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", default="42,1,2,3,4")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--name", default="esmm", help="results file name")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    results = {name: {"all": [], "clicked": [], "speed": []} for name in VARIANTS}
    for seed in seeds:
        for name, overrides in VARIANTS.items():
            config = load_config(
                CONFIG,
                [
                    f"experiment.seed={seed}",
                    f"training.epochs={args.epochs}",
                    "logging.progress=none",
                    "logging.tensorboard=false",
                    *overrides,
                ],
            )
            run_dir = tempfile.mkdtemp(prefix="moe_tf_esmm_")
            try:
                metrics = train(config, run_dir, export=False)
                every, clicked = cvr_aucs(run_dir)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
            results[name]["all"].append(every)
            results[name]["clicked"].append(clicked)
            results[name]["speed"].append(metrics["examples_per_sec"])
            print(f"  seed {seed} {name}: CVR AUC all impressions {every:.4f}, clicked {clicked:.4f}", flush=True)
    lines = [
        f"ESMM vs CVR on clicked impressions, synthetic_ctr_cvr (200,000 impressions), {args.epochs} epochs, seeds "
        f"{seeds}, {os.cpu_count()} CPUs; CVR ROC AUC on the test split, mean ± standard error over seeds",
        f"{'variant':<18}{'all impressions':>20}{'clicked only':>20}{'train ex/s':>12}",
    ]
    for name, r in results.items():
        lines.append(
            f"{name:<18}{mean_se(r['all']):>20}{mean_se(r['clicked']):>20}{statistics.median(r['speed']):>12,.0f}"
        )
    wins = sum(e > c for e, c in zip(results["esmm"]["all"], results["cvr_clicked"]["all"]))
    lines.append(f"esmm > cvr_clicked over all impressions on {wins} of {len(seeds)} seeds")
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
