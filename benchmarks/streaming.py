"""Streaming TFRecord shards: memory that does not grow with the data, speed against the in-memory npz source, and
the statistics pass.

A click log with the `synthetic_ctr_cvr` schema (user and item ids, an 8-float context; click, conversion, purchase
labels) is generated seeded, in chunks, and written as GZIP TFRecord shards under /tmp at each size (default 2 M and
20 M training rows, plus a 100 k-row test file), and the 2 M log also as one npz. The same model (configs/
esmm_synthetic.yaml's ESMM: ctr, cvr, ctcvr = ctr × cvr) trains a fixed number of steps on each, one `moe-tf train`
process per run:
  - peak RSS of the process (its VmHWM) on 2 M and on 20 M rows: memory does not grow with the rows (goal: within 10 %);
  - examples/s streaming vs the npz source on the 2 M log (repeats interleaved, medians; goal ≥ 0.8);
  - the statistics pass (every training file read, parsed, counted and its statistics gathered): rows/s;
  - the same 2 M log as CSV and as Parquet shards (streamed csv and parquet sources): their pass rows/s and
    examples/s against the npz source (`--parts formats`);
  - what `--resume` costs (`--parts resume`, the largest TFRecord log): seconds to the first batch of a pipeline
    started at step 0, a quarter, half and the end of an epoch (a resumed epoch is read from its start and the
    batches before the step skipped, which is what keeps the batches, shuffle buffer included, exactly those of an
    uninterrupted run).

    python benchmarks/streaming.py [--sizes 2000000,20000000] [--steps 1500] [--repeats 3] [--keep]
                                   [--parts memory,formats,resume]

Results: benchmarks/results/streaming.txt (and the raw runs beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.join(HERE, "..")
sys.path.insert(0, REPO)

import numpy as np  # noqa: E402
import yaml  # noqa: E402

from benchmarks.report import write_results  # noqa: E402
from moe_tf.testing.processes import peak_rss_mib  # noqa: E402

WORLD = {
    "users": 200_000,
    "items": 50_000,
    "latent_dim": 8,
    "context_dim": 8,
    "click_bias": -3.0,
    "conversion_bias": -1.0,
}
# ids hashed into fixed tables, as a log of unbounded ids is: the model is the same size on every log
HASHED = {"user": {"hash_buckets": 100_000}, "item": {"hash_buckets": 50_000}}
CHUNK = 500_000
TEST_ROWS = 100_000


def write_log(directory: str, rows: int, shards: int, seed: int = 0, npz: bool = False) -> None:
    """`rows` training impressions in `shards` GZIP files + one test file (and, with `npz`, all of it as log.npz)."""
    import tensorflow as tf

    from moe_tf.data.synthetic_ctr_cvr import generate_chunks

    os.makedirs(directory, exist_ok=True)
    per_shard = -(-rows // shards)
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    writer, written, shard = None, 0, 0
    parts = [] if npz else None
    started = time.perf_counter()
    for features, labels in generate_chunks(rows + TEST_ROWS, CHUNK, seed=seed, **WORLD):
        if parts is not None:
            parts.append((features, labels))
        columns = {
            "user": features["user"].tolist(),
            "item": features["item"].tolist(),
            "context": features["context"].tolist(),
            **{k: labels[k].tolist() for k in ("click", "conversion", "purchase")},
        }
        for i in range(len(columns["user"])):
            if written >= rows:  # the rest is the test file
                name = "test.tfrecord.gz"
            else:
                name = f"train-{written // per_shard:05d}-of-{shards:05d}.tfrecord.gz"
            if writer is None or name != shard:
                if writer is not None:
                    writer.close()
                writer, shard = tf.io.TFRecordWriter(os.path.join(directory, name), options), name
            writer.write(_example(columns, i))
            written += 1
    writer.close()
    print(f"  wrote {rows:,} + {TEST_ROWS:,} rows in {time.perf_counter() - started:.0f} s to {directory}", flush=True)
    if parts is not None:
        arrays = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
        arrays.update({k: np.concatenate([p[1][k] for p in parts]) for k in ("click", "conversion", "purchase")})
        np.savez(os.path.join(directory, "log.npz"), **arrays)


def _example(columns, i) -> bytes:
    import tensorflow as tf

    f = tf.train.Feature
    feature = {
        "user": f(int64_list=tf.train.Int64List(value=[columns["user"][i]])),
        "item": f(int64_list=tf.train.Int64List(value=[columns["item"][i]])),
        "context": f(float_list=tf.train.FloatList(value=columns["context"][i])),
        **{k: f(int64_list=tf.train.Int64List(value=[columns[k][i]])) for k in ("click", "conversion", "purchase")},
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_tables(directory: str, shards: int) -> None:
    """The log.npz of `directory` as CSV and Parquet shards (training rows; the test rows as one file each)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    with np.load(os.path.join(directory, "log.npz")) as f:
        arrays = {k: f[k] for k in f.files}
    columns = {"user": arrays["user"], "item": arrays["item"]}
    columns.update({f"context_{k}": arrays["context"][:, k] for k in range(WORLD["context_dim"])})
    columns.update({k: arrays[k] for k in ("click", "conversion", "purchase")})
    table = pa.table(columns)
    train = table.num_rows - TEST_ROWS
    bounds = np.linspace(0, train, shards + 1).astype(int)
    parts = {f"train-{k:05d}": table.slice(a, b - a) for k, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))}
    parts["test"] = table.slice(train)
    for kind in ("csv", "parquet"):
        os.makedirs(os.path.join(directory, kind), exist_ok=True)
        for name, part in parts.items():
            path = os.path.join(directory, kind, f"{name}.{kind}")
            pacsv.write_csv(part, path) if kind == "csv" else pq.write_table(part, path)
    print(f"  wrote {train:,} + {TEST_ROWS:,} rows as CSV and Parquet shards in {directory}", flush=True)


def source(directory: str, kind: str) -> dict:
    if kind in ("csv", "parquet"):
        return {
            "type": kind,
            **({"stream": True} if kind == "csv" else {}),
            "train": os.path.join(directory, kind, f"train-*.{kind}"),
            "test": os.path.join(directory, kind, f"test.{kind}"),
            "eval_fraction": 0.0,
            "categorical": {name: {"column": name, **options} for name, options in HASHED.items()},
            "numeric": [f"context_{k}" for k in range(WORLD["context_dim"])],
            "numeric_feature": "context",
            "labels": ["click", "conversion", "purchase"],
        }
    if kind == "npz":
        return {
            "type": "npz",
            "path": os.path.join(directory, "log.npz"),
            "features": ["user", "item", "context"],
            "modality": {"user": "categorical", "item": "categorical"},
            "labels": ["click", "conversion", "purchase"],
            "categorical": HASHED,
            "eval_fraction": 0.0,
            "test_fraction": TEST_ROWS / (TEST_ROWS + 2_000_000),
        }
    return {
        "type": "tfrecord",
        "train": os.path.join(directory, "train-*.tfrecord.gz"),
        "test": os.path.join(directory, "test.tfrecord.gz"),
        "features": {
            "user": {"modality": "categorical", "dtype": "int64"},
            "item": {"modality": "categorical", "dtype": "int64"},
            "context": {"modality": "numeric", "shape": [WORLD["context_dim"]]},
        },
        "labels": {k: {"num_classes": 2} for k in ("click", "conversion", "purchase")},
        "categorical": HASHED,
    }


def config(directory: str, kind: str, steps: int, work: str) -> str:
    with open(os.path.join(REPO, "configs", "esmm_synthetic.yaml")) as f:
        data = yaml.safe_load(f)
    data["data"] = {"sources": {"impressions": source(directory, kind)}, "shuffle_buffer": 100_000}
    data["training"].update(steps=steps)
    data["training"].pop("epochs", None)
    data["logging"] = {"progress": "none", "tensorboard": False, "gate_heatmap": False}
    path = os.path.join(work, f"{kind}-{os.path.basename(directory)}.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f)
    return path


def run(config_path: str, run_dir: str) -> dict:
    """One `moe-tf train` process → its metrics, peak RSS (MiB, the child's own VmHWM) and wall time."""
    shutil.rmtree(run_dir, ignore_errors=True)
    started = time.perf_counter()
    mib, err = peak_rss_mib("train", "--config", config_path, "--output-dir", run_dir, "--no-export", cwd=REPO)
    seconds = time.perf_counter() - started
    if mib is None:
        raise SystemExit(f"{config_path} failed:\n{err[-3000:]}")
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    return {"metrics": metrics, "rss_mib": mib, "seconds": seconds}


def statistics_pass(config_path: str) -> tuple[float, int]:
    """Seconds of loading the source (the pass over every file) in a fresh process, and its training rows."""
    script = (
        "import json, sys, time\n"
        "from moe_tf.config.loader import load_config\n"
        "from moe_tf.data.pipeline import build_task_data\n"
        "c = load_config(sys.argv[1]); t = time.perf_counter(); d = build_task_data(c)\n"
        "print(json.dumps([time.perf_counter() - t, d.size('train')]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script, config_path], cwd=REPO, capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    seconds, rows = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, rows


def resume_cost(config_path: str, repeats: int) -> list[tuple[int, float]]:
    """[(start step, seconds to its first training batch)] in one fresh process (the pass made once, first)."""
    script = (
        "import json, sys, time\n"
        "from moe_tf.config.loader import load_config\n"
        "from moe_tf.data.pipeline import build_task_data\n"
        "c = load_config(sys.argv[1]); d = build_task_data(c); batch = c.training.batch_size\n"
        "per_epoch = d.size('train') // batch\n"
        "out = []\n"
        "for r in range(int(sys.argv[2])):\n"
        "    for step in (0, per_epoch // 4, per_epoch // 2, per_epoch - 1):\n"
        "        t = time.perf_counter(); next(iter(d.train_dataset(batch, start_step=step)))\n"
        "        out.append([step, time.perf_counter() - t])\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, config_path, str(repeats)], cwd=REPO, capture_output=True, text=True
    )
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    return [tuple(x) for x in json.loads(out.stdout.strip().splitlines()[-1])]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", default="2000000,20000000")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--work", default="/tmp/moe_tf_streaming")
    p.add_argument("--keep", action="store_true", help="keep the generated logs (reused by the next run)")
    p.add_argument("--name", default="streaming")
    p.add_argument(
        "--parts",
        default="memory,formats,resume",
        help="memory (TFRecord on every size), formats (CSV, Parquet), resume (time to a resumed step's batch)",
    )
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    os.makedirs(args.work, exist_ok=True)
    logs = {}
    for rows in sizes:
        directory = os.path.join(args.work, f"log_{rows}")
        if not os.path.exists(os.path.join(directory, "test.tfrecord.gz")):
            write_log(directory, rows, shards=max(4, rows // 500_000), npz=rows == sizes[0])
        logs[rows] = directory
    small, large = sizes[0], sizes[-1]
    parts = args.parts.split(",")
    lines = [
        f"synthetic_ctr_cvr click log ({WORLD['users']:,} users, {WORLD['items']:,} items), GZIP TFRecord shards; "
        f"configs/esmm_synthetic.yaml's model, {args.steps} steps of batch 1024 per run; {os.cpu_count()} CPUs",
    ]
    variants = {}
    if "memory" in parts:
        for directory in logs.values():  # the statistics pass
            seconds, counted = statistics_pass(config(directory, "tfrecord", args.steps, args.work))
            lines.append(f"tfrecord pass, {counted:,} training rows: {seconds:.1f} s ({counted / seconds:,.0f} rows/s)")
            print(lines[-1], flush=True)
        variants.update(
            {f"tfrecord {rows:,}": config(d, "tfrecord", args.steps, args.work) for rows, d in logs.items()}
        )
    if "formats" in parts:
        if not os.path.exists(os.path.join(logs[small], "parquet", "test.parquet")):
            write_tables(logs[small], shards=max(4, small // 500_000))
        for kind in ("csv", "parquet"):
            variants[f"{kind} {small:,}"] = path = config(logs[small], kind, args.steps, args.work)
            seconds, counted = statistics_pass(path)
            lines.append(f"{kind} pass, {counted:,} training rows: {seconds:.1f} s ({counted / seconds:,.0f} rows/s)")
            print(lines[-1], flush=True)
    if "resume" in parts:
        timed = resume_cost(config(logs[large], "tfrecord", args.steps, args.work), args.repeats)
        for step in sorted({s for s, _ in timed}):
            runs = [t for s, t in timed if s == step]
            lines.append(
                f"resume at step {step:,} of a {large:,}-row epoch (batch 1024): {statistics.median(runs):.1f} s to "
                f"its first batch (runs: {', '.join(f'{t:.1f}' for t in runs)})"
            )
            print(lines[-1], flush=True)
        if parts == ["resume"]:
            write_results(args.name, lines)
            return
    variants[f"npz {small:,}"] = config(logs[small], "npz", args.steps, args.work)
    results = {name: [] for name in variants}
    for r in range(args.repeats):  # interleaved repeats
        for name, path in variants.items():
            results[name].append(run(path, os.path.join(args.work, "run")))
            last = results[name][-1]
            print(
                f"  {name} repeat {r}: {last['metrics']['examples_per_sec']:,.0f} ex/s, peak RSS "
                f"{last['rss_mib']:,.0f} MiB, {last['seconds']:.0f} s",
                flush=True,
            )
    median = {}
    for name, runs in results.items():
        speed = statistics.median(x["metrics"]["examples_per_sec"] for x in runs)
        rss = statistics.median(x["rss_mib"] for x in runs)
        median[name] = (speed, rss)
        speeds = ", ".join(f"{x['metrics']['examples_per_sec']:,.0f}" for x in runs)
        peaks = ", ".join(f"{x['rss_mib']:,.0f}" for x in runs)
        lines.append(
            f"{name:<22} examples/s {speed:>9,.0f} (runs: {speeds}); peak RSS {rss:,.0f} MiB (runs: {peaks}); "
            f"test ctcvr AUC {runs[0]['metrics']['tasks']['ctcvr']['auc']:.4f}"
        )
    npz = median[f"npz {small:,}"][0]
    if "memory" in parts:
        rss_ratio = median[f"tfrecord {large:,}"][1] / median[f"tfrecord {small:,}"][1]
        lines.append(f"peak RSS {large:,} rows / {small:,} rows: {rss_ratio:.3f} (goal <= 1.10)")
        lines.append(
            f"examples/s tfrecord / in-memory npz on {small:,} rows: {median[f'tfrecord {small:,}'][0] / npz:.3f} "
            "(goal >= 0.8)"
        )
    if "formats" in parts:
        for kind in ("csv", "parquet"):
            lines.append(
                f"examples/s {kind} / in-memory npz on {small:,} rows: {median[f'{kind} {small:,}'][0] / npz:.3f}"
            )
    write_results(args.name, lines)
    if not args.keep:
        shutil.rmtree(args.work, ignore_errors=True)


if __name__ == "__main__":
    main()
