"""`moe-tf compare` on a real run and two variants of it: differing keys, metrics, sorting, formats, errors."""

import csv
import io
import json
import os
import shutil

import pytest
import yaml

from tests.conftest import run_main
from tests.logging.test_tensorboard import read_scalars


@pytest.fixture(scope="module")
def runs(trained_run, tmp_path_factory):
    """runs/tiny (the trained run), runs/wide (4 experts, digit accuracy 0.1 lower and digit loss 0.05 lower: best
    by one, worst by the other), runs/pending (unfinished)."""
    root = tmp_path_factory.mktemp("compare") / "runs"
    tiny = root / "tiny"
    shutil.copytree(trained_run[0], tiny, ignore=shutil.ignore_patterns("export", "checkpoints"))
    wide = root / "wide"
    shutil.copytree(tiny, wide)
    config = yaml.safe_load((wide / "config.yaml").read_text())
    experts = config["model"]["experts"]["count"]
    config["model"]["experts"]["count"] = experts + 1
    (wide / "config.yaml").write_text(yaml.safe_dump(config))
    metrics = json.loads((wide / "metrics.json").read_text())
    metrics["tasks"]["digit"]["accuracy"] -= 0.1
    metrics["tasks"]["digit"]["loss"] -= 0.05
    (wide / "metrics.json").write_text(json.dumps(metrics))
    pending = root / "pending"
    pending.mkdir()
    shutil.copy(tiny / "config.yaml", pending / "config.yaml")
    return root, experts, json.loads((tiny / "metrics.json").read_text())


def test_table_sorts_by_the_first_metric_and_shows_only_the_keys_that_differ(runs, capsys):
    root, experts, metrics = runs
    code, out, err = run_main(capsys, "compare", str(root))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "3 run(s), sorted by digit/accuracy (higher is better)"
    header = lines[1].split()
    assert header[:2] == ["run", "model.experts.count"]  # the one key that differs (pending has the same config)
    assert {"digit/accuracy", "digit/top5_accuracy", "high/accuracy", "loss", "steps", "examples/s"} <= set(header)
    rows = [line.split() for line in lines[3:]]
    assert [r[0] for r in rows] == ["tiny", "wide", "pending"]  # best first; the unfinished run last
    assert rows[0][1] == str(experts) and rows[1][1] == str(experts + 1)
    accuracy = header.index("digit/accuracy")
    assert rows[0][accuracy] == f"{metrics['tasks']['digit']['accuracy']:.4f}"
    assert lines[-1].startswith("pending (unfinished)")


def test_csv_and_markdown_and_a_lower_is_better_metric(runs, capsys):
    root, experts, metrics = runs
    code, out, _ = run_main(capsys, "compare", f"{root}/*", "--metric", "digit/loss", "--format", "csv")
    assert code == 0
    table = list(csv.DictReader(io.StringIO(out)))
    assert [r["run"] for r in table] == ["wide", "tiny", "pending (unfinished)"]  # wide's digit/loss is lower
    assert float(table[0]["digit/loss"]) == pytest.approx(metrics["tasks"]["digit"]["loss"] - 0.05, abs=1e-4)
    assert float(table[1]["digit/loss"]) == pytest.approx(metrics["tasks"]["digit"]["loss"], abs=1e-4)
    assert float(table[0]["digit/accuracy"]) == pytest.approx(metrics["tasks"]["digit"]["accuracy"] - 0.1, abs=1e-4)
    assert table[-1]["run"] == "pending (unfinished)" and table[-1]["loss"] == ""
    code, out, _ = run_main(capsys, "compare", str(root / "tiny"), str(root / "wide"), "--format", "markdown")
    assert out.splitlines()[0].startswith("| run | model.experts.count | ")
    assert out.splitlines()[1].startswith("| --- | --- |")
    assert out.splitlines()[2].startswith(f"| tiny | {experts} | ")


def test_an_eval_metric_is_the_last_evaluation_logged(runs, capsys):
    root, _, _ = runs
    code, out, err = run_main(capsys, "compare", str(root / "tiny"), "--metric", "eval/digit/accuracy")
    assert code == 0, err
    header, row = out.splitlines()[1].split(), out.splitlines()[3].split()
    last = read_scalars(os.path.join(root, "tiny", "logs"))["eval/digit/accuracy"][-1][1]
    assert row[header.index("eval/digit/accuracy")] == f"{last:.4f}"


@pytest.mark.parametrize(
    "args, message",
    [
        (["/nonexistent/runs"], "compare: /nonexistent/runs matches no run directory"),
        (["RUNS/tiny", "--metric", "digit/f1"], "compare: no run has the metric 'digit/f1'; known: digit/loss, "),
    ],
)
def test_bad_arguments_get_a_clear_error(runs, capsys, args, message):
    root, _, _ = runs
    code, out, err = run_main(capsys, "compare", *[a.replace("RUNS", str(root)) for a in args])
    assert code == 2 and out == ""
    assert err.startswith(f"moe-tf compare: error: {message}"), err


def test_small_values_keep_their_digits():
    from moe_tf.compare import _cell

    assert [_cell(v, "table") for v in (1e-7, 3e-4, 0.0, 0.5, 1234.5)] == [
        "1e-07",
        "0.0003",
        "0.0000",
        "0.5000",
        "1,234",
    ]
    assert _cell(1e-7, "csv") == "1e-07"
