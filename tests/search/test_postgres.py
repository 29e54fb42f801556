"""`moe-tf search` across processes on a real PostgreSQL server: two searches share one study, a SIGKILLed one's
trial is re-run by the survivor after three missed heartbeats, and a bad storage URL is one clear line.

The module starts its own server on loopback (moe_tf.testing.postgres: Debian's `postgresql` package, which .ci/run
installs; initdb into a directory under /tmp, a free port, stopped and removed at the end whatever the outcome), or
uses the one `MOE_TF_TEST_POSTGRES` names (`postgresql://user:password@host:port/database`). Without either the
tests skip, saying why."""

import os
import signal
import subprocess

import optuna
import pytest
import yaml

from moe_tf.search.study import masked
from moe_tf.testing import processes
from moe_tf.testing.postgres import Unavailable, local_server
from moe_tf.testing.processes import read_until
from tests.conftest import REPO, tiny_dict

pytestmark = pytest.mark.slow

SPACE = {
    "metric": "eval/digit/accuracy",
    "sampler": {"type": "random"},
    "params": {"training.optimizer.learning_rate": {"float": [1e-3, 0.1], "log": True}},
}


def _run(command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def postgres():
    """A storage URL of a running PostgreSQL server whose database `optuna` user `optuna` (password `pw`) owns."""
    if os.environ.get("MOE_TF_TEST_POSTGRES"):
        yield os.environ["MOE_TF_TEST_POSTGRES"]
        return
    try:
        with local_server() as url:
            yield url
    except Unavailable as e:
        pytest.skip(f"no PostgreSQL server could be started here ({e}; or set MOE_TF_TEST_POSTGRES)")


def search_command(tmp_path, url, study, output, trials, *extra):
    config, space = tmp_path / "base.yaml", tmp_path / "space.yaml"
    if not config.exists():
        config.write_text(yaml.safe_dump(tiny_dict(training={"steps": 10, "eval_every": 5})))
        space.write_text(yaml.safe_dump(SPACE))
    storage = ["--storage", url, "--study-name", study]
    return processes.search_command(config, space, trials, tmp_path / output, *storage, *extra)


def start(command):
    return processes.start_command(command, cwd=REPO)


def trial_numbers(directory) -> set[int]:
    return {int(name.split("-")[1]) for name in os.listdir(directory) if name.startswith("trial-")}


def best_config(directory) -> str:
    """best.yaml without its header (which names the study directory)."""
    return "".join(line for line in open(directory / "best.yaml") if not line.startswith("#"))


def test_two_searches_share_one_study(tmp_path, postgres):
    procs = [
        start(search_command(tmp_path, postgres, "shared", out, 4, "--seed", str(seed), "--heartbeat", "2"))
        for out, seed in (("a", 1), ("b", 2))
    ]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    for proc, out in zip(procs, outputs):
        assert proc.returncode == 0 and "Traceback" not in out, out[-3000:]
    a, b = trial_numbers(tmp_path / "a"), trial_numbers(tmp_path / "b")
    assert a and b and not a & b and a | b == {0, 1, 2, 3}, (a, b)
    study = optuna.load_study(study_name="shared", storage=postgres)
    assert sorted(t.state.name for t in study.trials) == ["COMPLETE"] * 4
    # Each process waited for the other's trials: both summaries and best configs are the study's.
    assert (tmp_path / "a" / "summary.txt").read_text() == (tmp_path / "b" / "summary.txt").read_text()
    assert best_config(tmp_path / "a") == best_config(tmp_path / "b")


def test_a_killed_searchs_trial_runs_again_in_the_survivor(tmp_path, postgres):
    victim = start(search_command(tmp_path, postgres, "killed", "victim", 3, "--seed", "1", "--heartbeat", "2"))
    try:
        read_until(victim.stdout, r"^trial 0 started")
        victim.send_signal(signal.SIGKILL)  # inside trial 0: it stays RUNNING, its heartbeats stop
        victim.wait(timeout=30)
    finally:
        victim.kill()
    survivor = start(search_command(tmp_path, postgres, "killed", "survivor", 3, "--seed", "2", "--heartbeat", "2"))
    out = survivor.communicate(timeout=600)[0]
    assert survivor.returncode == 0 and "Traceback" not in out, out[-3000:]
    study = optuna.load_study(study_name="killed", storage=postgres)
    states = {t.number: t.state.name for t in study.trials}
    assert states[0] == "FAIL" and sum(s == "COMPLETE" for s in states.values()) == 3, states
    retry = next(t for t in study.trials if t.user_attrs.get("retry_of") == 0)
    assert retry.params == study.trials[0].params and retry.state.name == "COMPLETE"
    assert f"trial {retry.number} (trial 0 again) started" in out, out[-3000:]


@pytest.mark.parametrize("what", ["wrong password", "unreachable host", "missing database"])
def test_a_bad_storage_url_is_one_line_with_the_password_masked(tmp_path, postgres, what):
    head, _, tail = postgres.partition("@")
    host, _, database = tail.partition("/")
    url = {
        "wrong password": head.rsplit(":", 1)[0] + ":nope@" + tail,
        "unreachable host": f"{head}@127.0.0.1:1/{database}",
        "missing database": f"{head}@{host}/no_such_db",
    }[what]
    done = _run(
        search_command(tmp_path, url, "bad", "bad", 1), cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    )
    lines = [line for line in done.stderr.splitlines() if line.startswith("moe-tf")]  # not TensorFlow's start-up log
    assert done.returncode == 1 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith(f"moe-tf search: error: --storage {masked(url)}: cannot open the study database: ")
    assert ":***@" in lines[0] and ":pw@" not in lines[0] and ":nope@" not in lines[0]


def test_a_missing_driver_names_the_package_and_the_url_forms(tmp_path):
    done = _run(
        search_command(tmp_path, "postgresql+psycopg2://u:secret@127.0.0.1:1/db", "x", "x", 1),
        cwd=REPO,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 1, done.stderr
    assert "psycopg2 (pip install psycopg2-binary) is not installed" in done.stderr
    assert "postgresql+psycopg://" in done.stderr and "u:***@" in done.stderr and "secret" not in done.stderr


def test_masked_hides_only_the_password():
    assert masked("postgresql://optuna:pw@host:5432/db") == "postgresql://optuna:***@host:5432/db"
    assert masked("postgresql+psycopg://u:p:q@h/db") == "postgresql+psycopg://u:***@h/db"
    assert masked("sqlite:////tmp/study.db") == "sqlite:////tmp/study.db"
    assert masked("postgresql://optuna@host/db") == "postgresql://optuna@host/db"
