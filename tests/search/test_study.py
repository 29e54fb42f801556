"""`moe-tf search` for real: a 3-trial study on digits whose search process is SIGKILLed inside a trial and resumed
by the same command; the pruner stops a hopeless trial at its first evaluation; the study ends with every trial in
its SQLite database, each an ordinary run directory, and the best trial's config as a YAML that loads."""

import json
import os
import signal
import subprocess

import optuna
import pytest
import yaml

from moe_tf.cli import main
from moe_tf.config.loader import load_config
from moe_tf.testing import processes
from moe_tf.testing.processes import read_until
from tests.conftest import REPO, tiny_dict

SPACE = {
    "metric": "eval/digit/accuracy",
    "pruner": {"type": "median", "startup_trials": 1},
    # a good learning rate first, then a hopeless one (the pruner's case), then TPE's own
    "enqueue": [{"training.optimizer.learning_rate": 0.05}, {"training.optimizer.learning_rate": 1e-7}],
    "params": {
        "training.optimizer.learning_rate": {"float": [1e-7, 0.1], "log": True},
        "model.experts.count": {"int": [2, 4]},
    },
}


def search_command(tmp_path):
    config, space = tmp_path / "base.yaml", tmp_path / "space.yaml"
    config.write_text(yaml.safe_dump(tiny_dict(training={"steps": 10, "eval_every": 5}, logging={"progress": "lines"})))
    space.write_text(yaml.safe_dump(SPACE))
    return processes.search_command(config, space, 3, tmp_path / "study", "--seed", "3")


@pytest.mark.slow
def test_killed_search_resumes_and_prunes(tmp_path):
    command = search_command(tmp_path)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    proc = processes.start_command(command, cwd=REPO)
    try:
        lines = read_until(proc.stdout, r"^trial 1 started")
        proc.send_signal(signal.SIGKILL)  # inside trial 1: it stays RUNNING in the database
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert "trial 0 finished: eval/digit/accuracy" in "".join(lines)

    resumed = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    out = resumed.stdout + resumed.stderr
    assert resumed.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "Warning" not in out, out[-3000:]
    assert "trial 1 was left running by a search process that died" in out
    retried = next(line for line in out.splitlines() if line.startswith("trial 2 (trial 1 again) started: "))
    assert "training.optimizer.learning_rate=1e-07" in retried
    assert "trial 2 pruned at step 5" in out

    study_dir = tmp_path / "study"
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{study_dir}/study.db")
    states = {t.number: t.state.name for t in study.trials}
    assert [states[0], states[1], states[2]] == ["COMPLETE", "FAIL", "PRUNED"], states
    assert states[3] in ("COMPLETE", "PRUNED") and len(states) == 4
    assert study.trials[2].params == study.trials[1].params
    assert list(study.trials[2].intermediate_values) == [5]  # pruned at its first evaluation
    assert study.best_trial.number in (0, 3)
    # each finished trial is a run directory: metrics.json (its eval split is the objective), trial.json
    for number in (0, 2, 3):
        run = study_dir / f"trial-{number:04d}"
        metrics = json.loads((run / "metrics.json").read_text())
        trial = json.loads((run / "trial.json").read_text())
        assert trial["values"] == [metrics["eval"]["tasks"]["digit"]["accuracy"]]
        assert metrics["step"] == (5 if states[number] == "PRUNED" else 10)
    assert (
        study.trials[0].value
        == json.loads((study_dir / "trial-0000" / "metrics.json").read_text())["eval"]["tasks"]["digit"]["accuracy"]
    )
    # the best config trains as it is
    best = study_dir / "best.yaml"
    assert best.read_text().startswith(f"# moe-tf train --config {best} --output-dir {study_dir}-best")
    config = load_config(str(best))
    assert config.training.optimizer.learning_rate == pytest.approx(
        study.best_trial.params["training.optimizer.learning_rate"]
    )
    assert config.logging.progress == "lines"  # the base config's (the search prints a line per trial)
    summary = (study_dir / "summary.txt").read_text()
    assert summary.splitlines()[1].startswith(f"*{study.best_trial.number} ")
    assert " fail " in summary and " pruned " in summary


def test_another_space_in_the_same_study_directory_is_refused(tmp_path, capsys):
    command = search_command(tmp_path)
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "search.yaml").write_text(yaml.safe_dump({"base": {}, "space": {}}))
    assert main(command[3:]) == 2
    err = capsys.readouterr().err
    assert f"moe-tf search: error: {tmp_path}/study holds a study with another base config" in err


def test_one_objective_per_task_writes_the_pareto_front(tmp_path, capsys):
    """Two objectives (no pruner): every trial of the front gets a config; the table stars them."""
    config, space = tmp_path / "base.yaml", tmp_path / "space.yaml"
    config.write_text(yaml.safe_dump(tiny_dict(training={"steps": 10, "eval_every": 10})))
    space.write_text(
        yaml.safe_dump(
            {
                "metrics": ["eval/digit/accuracy", "eval/high/loss"],
                "sampler": {"type": "random"},
                "params": {"tasks[1].weight": {"float": [0.1, 2.0]}},
            }
        )
    )
    study_dir = tmp_path / "pareto-study"
    argv = processes.search_command(config, space, 2, study_dir, "--seed", "0")[3:]  # after `python -m moe_tf`
    assert main(argv) == 0
    out = capsys.readouterr().out
    study = optuna.load_study(study_name="pareto-study", storage=f"sqlite:///{study_dir}/study.db")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    front = {t.number for t in study.best_trials}
    assert front and all(t.state.name == "COMPLETE" and len(t.values) == 2 for t in study.trials)
    for number in front:
        path = study_dir / "pareto" / f"trial-{number:04d}.yaml"
        assert load_config(str(path)).tasks[1].weight == pytest.approx(study.trials[number].params["tasks[1].weight"])
    assert not (study_dir / "best.yaml").exists()
    assert "objective: maximize eval/digit/accuracy, minimize eval/high/loss" in out
    assert "* the Pareto front" in out and all(f"*{n} " in out for n in front)
    # the same command on the finished study runs nothing more
    assert main(argv) == 0
    assert "(2 trial(s) so far)" in (again := capsys.readouterr().out) and "started" not in again


def test_a_stop_signal_inside_a_trial_ends_the_search_resumably(tmp_path, capsys, monkeypatch):
    """SIGINT/SIGTERM inside a trial (train raises Interrupted after its checkpoint): exit 3, the message says to
    rerun the command, and the trial's parameters wait to run first."""
    import moe_tf.run
    from moe_tf.errors import Interrupted

    def stopped(*args, **kwargs):
        raise Interrupted("SIGTERM at step 3: checkpoint written (x). Resume with:\n  moe-tf train ...")

    monkeypatch.setattr(moe_tf.run, "train", stopped)
    command = search_command(tmp_path)
    assert main(command[3:]) == 3
    err = capsys.readouterr().err
    assert (
        "moe-tf search: stopped: SIGTERM at step 3 in trial 0: the search stopped; run the same command again "
        "to resume it (trial 0's parameters run again)"
    ) in err
    study = optuna.load_study(study_name="study", storage=f"sqlite:///{tmp_path}/study/study.db")
    assert study.trials[0].state.name == "FAIL"
    retry = [t for t in study.trials if t.user_attrs.get("retry_of") == 0]
    assert len(retry) == 1 and retry[0].state.name == "WAITING"
    assert retry[0].system_attrs["fixed_params"] == study.trials[0].params
