"""Tabular data: accuracy on UCI Adult against scikit-learn, and the training speed of a small tabular MMoE against
Keras `model.fit`.

`adult`: configs/adult_mmoe.yaml (tasks income, binary, and marital status, 7 classes; inputs every other column but
`relationship`; capital_gain and capital_loss both numeric and IDs; cross layers) with each architecture and two
ablations (no cross layers; the capital amounts numeric only), over several seeds: test income ROC AUC and marital
accuracy, mean ± standard error, and training examples/s. The anchors are computed in the same run on the same
files and inputs: scikit-learn's HistGradientBoostingClassifier and LogisticRegression on one-hot categoricals (one
model per task).

`speed`: a census-style table of 495 one-hot columns (40 categorical variables, generated and seeded, under /tmp)
and two binary tasks, an identical small MMoE (a dense stem of 32, 8 experts of 4 units, towers of 8, batch 256,
Adam) trained by moe-tf's loop and by Keras `fit` in one process (benchmarks/throughput.py: interleaved repeats,
medians). Its last line is the loop/fit ratio.

    python benchmarks/tabular.py adult [--seeds 42,1,2,3,4] [--variants single_task,shared_bottom,mmoe,...]
    python benchmarks/tabular.py speed [--steps 200] [--repeats 9]

Results: benchmarks/results/tabular_adult.txt and tabular_speed.txt.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import numpy as np  # noqa: E402

from benchmarks.report import write_results  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
ADULT = os.path.join(REPO, "..", "shared", "data", "adult")
COLUMNS = (
    "age workclass fnlwgt education education_num marital_status occupation relationship race sex capital_gain "
    "capital_loss hours_per_week native_country income"
).split()
CATEGORICAL = ["workclass", "education", "occupation", "race", "sex", "native_country"]
NUMERIC = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]
VARIANTS = {
    "single_task": ["model.architecture=single_task"],
    "shared_bottom": ["model.architecture=shared_bottom"],
    "mmoe": [],  # the config: cross layers, capital amounts also as IDs
    "ple": ["model.architecture=ple"],
    "mmoe_no_cross": ["model.stems.categorical.interaction=none"],
    "mmoe_amounts_numeric_only": [f"data.sources.adult.categorical=[{', '.join(CATEGORICAL)}]"],
}


def read_adult(name: str) -> dict[str, np.ndarray]:
    with open(os.path.join(ADULT, name)) as f:
        rows = [[c.strip() for c in row] for row in csv.reader(f) if len(row) == len(COLUMNS)]
    return {c: np.array([r[i] for r in rows]) for i, c in enumerate(COLUMNS)}


def anchors() -> dict[str, tuple[float, float]]:
    """{model: (income test ROC AUC, marital test accuracy)} of scikit-learn on one-hot categoricals."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    train, test = read_adult("adult.data"), read_adult("adult.test")
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(
        np.stack([train[c] for c in CATEGORICAL], 1)
    )

    def features(d):
        return np.concatenate(
            [
                encoder.transform(np.stack([d[c] for c in CATEGORICAL], 1)),
                np.stack([d[c].astype(float) for c in NUMERIC], 1),
            ],
            axis=1,
        )

    x, x_test = features(train), features(test)
    income, income_test = np.char.startswith(train["income"], ">"), np.char.startswith(test["income"], ">")
    out = {}
    for name, make in {
        "HistGradientBoosting": lambda: HistGradientBoostingClassifier(random_state=0),
        "LogisticRegression": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    }.items():
        auc = roc_auc_score(income_test, make().fit(x, income).predict_proba(x_test)[:, 1])
        marital = accuracy_score(test["marital_status"], make().fit(x, train["marital_status"]).predict(x_test))
        out[name] = (auc, marital)
        print(f"  {name}: income AUC {auc:.4f}, marital accuracy {marital:.4f}", flush=True)
    return out


def mean_se(values: list[float]) -> str:
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {se:.4f}"


def adult(args) -> None:
    from moe_tf.config.loader import load_config
    from moe_tf.run import train

    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    lines = [
        f"UCI Adult (configs/adult_mmoe.yaml), seeds {seeds}, {os.cpu_count()} CPUs; test split (adult.test, "
        "16,281 rows); mean ± standard error over seeds",
        f"{'model':<28}{'income ROC AUC':>20}{'marital accuracy':>20}{'train ex/s':>12}",
    ]
    results = {}
    for name in variants:
        auc, accuracy, speed = [], [], []
        for seed in seeds:
            config = load_config(
                os.path.join(REPO, "configs", "adult_mmoe.yaml"),
                [f"experiment.seed={seed}", "logging.progress=none", "logging.tensorboard=false", *VARIANTS[name]],
            )
            run_dir = tempfile.mkdtemp(prefix="moe_tf_adult_")
            try:
                metrics = train(config, run_dir, export=False)
            finally:
                shutil.rmtree(run_dir, ignore_errors=True)
            auc.append(metrics["tasks"]["income"]["auc"])
            accuracy.append(metrics["tasks"]["marital"]["accuracy"])
            speed.append(metrics["examples_per_sec"])
            print(f"  {name} seed {seed}: income AUC {auc[-1]:.4f}, marital accuracy {accuracy[-1]:.4f}", flush=True)
        results[name] = (auc, accuracy)
        lines.append(f"{name:<28}{mean_se(auc):>20}{mean_se(accuracy):>20}{statistics.median(speed):>12,.0f}")
    for name, (auc, accuracy) in anchors().items():
        lines.append(f"{name + ' (sklearn)':<28}{auc:>20.4f}{accuracy:>20.4f}{'':>12}")
    best = max(results, key=lambda n: statistics.mean(results[n][0]))
    auc, accuracy = (statistics.mean(v) for v in results[best])
    lines.append(
        f"goal income AUC >= 0.90 and marital accuracy >= 0.70 (mean of {len(seeds)} seeds): best variant {best} "
        f"{auc:.4f} / {accuracy:.4f}: {'met' if auc >= 0.90 and accuracy >= 0.70 else 'not met'}"
    )
    write_results(args.name or "tabular_adult", lines)


def census_table(path: str, rows: int = 100_000, seed: int = 0) -> str:
    """A census-style npz: `x`, 495 one-hot columns of 40 categorical variables (2 to 56 values each), and two binary
    labels that depend on a few of them and on pairs."""
    rng = np.random.default_rng(seed)
    cardinalities = [2 + (i * 7) % 20 for i in range(40)]  # 460 columns; the last variable takes the rest
    cardinalities[-1] += 495 - sum(cardinalities)
    blocks, codes = [], []
    for k in cardinalities:
        c = rng.choice(k, rows, p=rng.dirichlet(np.full(k, 0.5)))
        codes.append(c)
        blocks.append(np.eye(k, dtype=np.float32)[c])
    x = np.concatenate(blocks, axis=1)
    w = rng.normal(0, 1, x.shape[1])
    logit = x @ w + 0.8 * (codes[0] == codes[1] % 2) - 2.5
    a = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    b = (rng.random(rows) < 1 / (1 + np.exp(-(x @ rng.normal(0, 1, x.shape[1]) + 0.5 * a - 1.0)))).astype(np.int64)
    np.savez(path, x=x, a=a, b=b)
    return path


SPEED_CONFIG = """\
experiment: {{name: tabular_speed, seed: 1}}
data:
  sources:
    census: {{type: npz, path: {path}, features: [x], labels: [a, b], eval_fraction: 0.05, test_fraction: 0.05}}
tasks:
  - {{name: a, dataset: census, label: a, type: binary}}
  - {{name: b, dataset: census, label: b, type: binary}}
model:
  architecture: mmoe
  stem: {{type: dense, units: [32]}}
  experts: {{count: 8, units: [4]}}
  tower: {{units: [8]}}
training:
  batch_size: 256
  optimizer: {{type: adam, learning_rate: 0.001}}
logging: {{progress: none, tensorboard: false}}
"""


def speed(args) -> None:
    from benchmarks import throughput

    work = tempfile.mkdtemp(prefix="moe_tf_tabular_")
    try:
        path = census_table(os.path.join(work, "census.npz"))
        config = os.path.join(work, "census.yaml")
        with open(config, "w") as f:
            f.write(SPEED_CONFIG.format(path=path))
        throughput.main(
            [
                "--config",
                config,
                "--batch-size",
                "256",
                "--steps",
                str(args.steps),
                "--repeats",
                str(args.repeats),
                "--name",
                args.name or "tabular_speed",
            ]
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("adult")
    p.add_argument("--seeds", default="42,1,2,3,4")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--name", default=None)
    p.set_defaults(run=adult)
    p = sub.add_parser("speed")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--name", default=None)
    p.set_defaults(run=speed)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
