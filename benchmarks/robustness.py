"""Robustness figures: how many broken configs, bad data files and bad command lines get a clear error (exit code 1
or 2, one message naming the field/file/value, no traceback), and how many SIGKILL-and-resume trials end with the
metrics of an uninterrupted run. The cases are the tests' own (moe_tf/testing/broken_configs.py,
moe_tf/testing/bad_inputs.py); here there are more of them (`--configs`) and every outcome is counted instead of
failing at the first.

    python benchmarks/robustness.py [--configs 2000] [--kill-trials 6] [--name robustness]

Writes benchmarks/results/<name>.txt.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from benchmarks.report import write_results  # noqa: E402


def cli_run(args) -> tuple[int | str, str]:
    """`moe-tf ARGS` in this process: (exit code, or "traceback: <exception>" when one escaped; stderr)."""
    from moe_tf import cli

    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli.main([str(a) for a in args])
    except BaseException as e:  # noqa: BLE001 - counted, not raised
        return f"traceback: {type(e).__name__}", err.getvalue()
    return code, err.getvalue()


def clear(code, err, expected, command) -> bool:
    return (
        code in (1, 2)
        and err.startswith(f"moe-tf {command}: error: ")
        and "Traceback" not in err
        and all(text in err for text in expected)
    )


def fuzz(n: int, seed: int) -> tuple[collections.Counter, collections.Counter, list]:
    from moe_tf.testing.broken_configs import base_configs, broken_case

    bases = base_configs(os.path.join(ROOT, "configs"))
    tried, ok, failures = collections.Counter(), collections.Counter(), []
    rng = random.Random(seed)
    while sum(tried.values()) < n:
        with tempfile.TemporaryDirectory() as directory:
            case = broken_case(rng, directory, bases)
            if case is None:
                continue
            code, err = cli_run(case.argv())
            if code == 0:
                continue  # the mutation left a valid config: not a broken one
            tried[case.kind] += 1
            if clear(code, err, case.expect, "validate") and code == 2:
                ok[case.kind] += 1
            else:
                failures.append((case.kind, case.expect, code, err[:300]))
    return tried, ok, failures


def table_cases(trained: str) -> tuple[int, int, list]:
    from moe_tf.testing.bad_inputs import CLI_CASES, DATA_CASES, copy_run

    tried, ok, failures = 0, 0, []
    for name, make in sorted(DATA_CASES.items()):
        with tempfile.TemporaryDirectory() as directory:
            args, expected = make(directory)
            code, err = cli_run(args)
            tried += 1
            if clear(code, err, expected, "train"):
                ok += 1
            else:
                failures.append((name, code, err[:300]))
    for name, (breaks, argv, expected) in sorted(CLI_CASES.items()):
        with tempfile.TemporaryDirectory() as directory:
            run_dir = copy_run(trained, directory)
            if breaks:
                breaks(run_dir)
            args = argv(directory, run_dir)
            code, err = cli_run(args)
            tried += 1
            if clear(code, err, expected, args[0]):
                ok += 1
            else:
                failures.append((name, code, err[:300]))
    return tried, ok, failures


def kill_trials(trials: int, seed: int) -> list[tuple[int, int, bool]]:
    """SIGKILL at a random logged step, resume, compare with an uninterrupted run: [(kill step, resumed from,
    identical)]."""
    from moe_tf.testing.processes import STEPS, finish, read_until, start, write_config

    rng = random.Random(seed)
    scratch = tempfile.mkdtemp(prefix="moe_tf_kill_")
    results = []
    try:
        from pathlib import Path

        config = write_config(Path(scratch))
        reference = os.path.join(scratch, "reference")
        proc = start(config, reference)
        finish(proc)
        expected = json.load(open(os.path.join(reference, "metrics.json")))
        for trial in range(trials):
            run_dir = os.path.join(scratch, f"trial{trial}")
            step = rng.randrange(5, STEPS, 5)
            proc = start(config, run_dir)
            read_until(proc, rf"\bstep {step}  loss")
            proc.send_signal(signal.SIGKILL)
            finish(proc)
            proc = start(config, run_dir, "--resume")
            rest = finish(proc)
            found = re.search(r"resumed from step (\d+)", rest)
            resumed_from = int(found.group(1)) if found else 0  # killed before its first checkpoint
            got = json.load(open(os.path.join(run_dir, "metrics.json")))
            same = got["loss"] == expected["loss"] and got["tasks"] == expected["tasks"]
            results.append((step, resumed_from, same))
            print(f"  kill after step {step}: resumed from {resumed_from}, identical: {same}", flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", type=int, default=2000)
    parser.add_argument("--kill-trials", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--name", default="robustness")
    args = parser.parse_args()

    tried, ok, fuzz_failures = fuzz(args.configs, args.seed)
    print(f"  fuzzed configs: {sum(ok.values())}/{sum(tried.values())} clear", flush=True)

    from moe_tf.config.loader import validate_config
    from moe_tf.run import train
    from moe_tf.testing.configs import tiny_dict

    scratch = tempfile.mkdtemp(prefix="moe_tf_robust_")
    try:
        trained = os.path.join(scratch, "trained")
        train(validate_config(tiny_dict(training={"steps": 20})), trained)
        cases, cases_ok, case_failures = table_cases(trained)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"  bad data and command lines: {cases_ok}/{cases} clear", flush=True)
    kills = kill_trials(args.kill_trials, args.seed)

    lines = [
        f"Robustness (benchmarks/robustness.py, seed {args.seed})",
        f"broken configs (moe-tf validate): {sum(ok.values())} of {sum(tried.values())} gave exit code 2 and a "
        "message naming the field/file/--set key",
        "  by kind: " + ", ".join(f"{k} {ok[k]}/{tried[k]}" for k in sorted(tried)),
        f"bad data (every source type) and bad command lines (every command): {cases_ok} of {cases} gave a clear "
        "one-line error",
        f"SIGKILL at a random step, then --resume: {sum(s for *_, s in kills)} of {len(kills)} ended with metrics "
        "identical to the uninterrupted run",
        "  (kill after step, resumed from): " + ", ".join(f"({k}, {r})" for k, r, _ in kills),
    ]
    for failure in fuzz_failures[:10] + case_failures[:10]:
        lines.append(f"  NOT CLEAR: {failure}")
    write_results(args.name, lines)


if __name__ == "__main__":
    main()
