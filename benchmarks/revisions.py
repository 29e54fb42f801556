"""Training speed of this tree against another git revision, side by side: the same config trained by each in turn
(fresh processes, interleaved repeats; the medians and their ratio). For what a change costs per step, e.g. the
non-finite guard's checks.

    python benchmarks/revisions.py --base 17ada23 [--config configs/digits_mmoe.yaml] [--steps 600] [--repeats 5]
        [--set KEY=VALUE ...] [--name revisions]

The base revision is exported with `git archive` into a temporary directory and run with this tree's Python
environment. Writes benchmarks/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from benchmarks.report import write_results  # noqa: E402

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


def examples_per_sec(tree: str, config: str, overrides: list, scratch: str) -> float:
    """Trains `config` with the code in `tree`; the final "N steps in T s (X examples/s)" line's X."""
    run_dir = tempfile.mkdtemp(dir=scratch)
    shutil.rmtree(run_dir)
    args = [
        sys.executable,
        "-m",
        "moe_tf",
        "train",
        "--config",
        config,
        "--output-dir",
        run_dir,
        "--set",
        "logging.progress=lines",
        *(a for o in overrides for a in ("--set", o)),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": tree}
    proc = subprocess.run(args, capture_output=True, text=True, cwd=tree, env=env, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: training failed:\n{proc.stderr[-2000:]}")
    shutil.rmtree(run_dir, ignore_errors=True)
    return float(re.search(r"steps in [\d.]+ s \(([\d,]+) examples/s\)", proc.stderr).group(1).replace(",", ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True, help="the git revision to compare with")
    parser.add_argument("--config", default="configs/digits_mmoe.yaml")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--set", action="append", default=[])
    parser.add_argument("--name", default="revisions")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="moe_tf_revisions_")
    try:
        base = os.path.join(scratch, "base")
        os.makedirs(base)
        archive = subprocess.run(["git", "archive", args.base], cwd=REPO, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
        if os.path.isdir(os.path.join(REPO, "..", "shared")):  # configs refer to ../shared/data
            os.symlink(os.path.abspath(os.path.join(REPO, "..", "shared")), os.path.join(scratch, "shared"))
        overrides = [f"training.steps={args.steps}", "training.early_stopping.monitor=null", *args.set]
        speeds = {"base": [], "this tree": []}
        for repeat in range(args.repeats):
            for name, tree in (("base", base), ("this tree", REPO)):
                speeds[name].append(examples_per_sec(tree, os.path.join(tree, args.config), overrides, scratch))
            print(
                f"  repeat {repeat + 1}: base {speeds['base'][-1]:,.0f}, this tree {speeds['this tree'][-1]:,.0f} "
                "examples/s",
                flush=True,
            )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    base_median, ours = statistics.median(speeds["base"]), statistics.median(speeds["this tree"])
    lines = [
        f"Training speed, {args.config} for {args.steps} steps ({', '.join(args.set) or 'as configured'}), "
        f"{args.repeats} interleaved repeats in fresh processes, {os.cpu_count()} CPUs",
        f"base {args.base}: median {base_median:,.0f} examples/s ({', '.join(f'{v:,.0f}' for v in speeds['base'])})",
        f"this tree ({head.strip()}+working tree): median {ours:,.0f} examples/s "
        f"({', '.join(f'{v:,.0f}' for v in speeds['this tree'])})",
        f"ratio this tree / base: {ours / base_median:.3f}",
    ]
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
