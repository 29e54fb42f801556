"""Where benchmark figures go: printed, and written to benchmarks/results/<name>.txt."""

from __future__ import annotations

import os

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def train_in_scratch_dir(config) -> dict:
    """Trains `config` in a temporary run directory (removed afterwards) and returns its test metrics."""
    import shutil
    import tempfile

    from moe_tf.run import train

    run_dir = tempfile.mkdtemp(prefix="moe_tf_bench_")
    try:
        return train(config, run_dir, export=False)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def train_for(trainer, steps: int) -> float:
    """Trains `steps` more steps with `trainer.fit` (no logging or evaluation hooks), exactly as a run's loop does →
    the seconds it took, input pipeline start included."""
    import time

    from moe_tf.training.hooks import TrainerHooks

    trainer.config.steps = int(trainer.optimizer.iterations.numpy()) + steps
    start = time.perf_counter()
    trainer.fit(TrainerHooks())
    return time.perf_counter() - start


def interleaved_seconds(trainers: dict, steps: int, repeats: int, digits: int = 2) -> dict[str, list[float]]:
    """Seconds per step of each trainer over `repeats` repeats of `steps` steps, the order reversed every other repeat
    (so drift in a shared machine's speed falls on every variant alike); prints each repeat's ms/step."""
    seconds: dict[str, list[float]] = {name: [] for name in trainers}
    for repeat in range(repeats):
        order = list(trainers) if repeat % 2 == 0 else list(reversed(trainers))
        for name in order:
            seconds[name].append(train_for(trainers[name], steps) / steps)
        times = ", ".join(f"{n} {seconds[n][-1] * 1e3:.{digits}f} ms/step" for n in trainers)
        print(f"repeat {repeat}: {times}", flush=True)
    return seconds


def write_results(name: str, lines: list[str]) -> None:
    """Prints `lines` and writes them to results/<name>.txt."""
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, f"{name}.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
