"""`--overwrite`: the old run is replaced only once the new run has written its first checkpoint; a new run that
fails before that puts the old one back untouched."""

import hashlib
import json
import os
import shutil

import yaml

from tests.conftest import run_main, tiny_dict


def snapshot(directory) -> dict:
    """{relative path: sha256} of every file under `directory`."""
    out = {}
    for root, _, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            out[os.path.relpath(path, directory)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    return out


def copy_run(trained_run, tmp_path):
    run_dir = str(tmp_path / "run")
    shutil.copytree(trained_run[0], run_dir)
    return run_dir


def write(tmp_path, data):
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_overwrite_replaces_the_run_once_the_new_one_has_started(trained_run, tmp_path, capsys):
    run_dir = copy_run(trained_run, tmp_path)
    config = write(tmp_path, tiny_dict(training={"steps": 6, "log_every": 3}, logging={"progress": "lines"}))
    code, _, err = run_main(capsys, "train", "--config", config, "--output-dir", run_dir, "--overwrite")
    assert code == 0, err
    assert "the previous run is kept at" in err and "the previous run is deleted" in err
    assert json.load(open(os.path.join(run_dir, "metrics.json")))["step"] == 6
    assert not os.path.exists(os.path.join(run_dir, "checkpoints", "ckpt-38.index"))  # nothing of the old run
    assert sorted(os.listdir(tmp_path)) == ["new.yaml", "run"]  # no directory left aside


def test_a_failed_overwrite_puts_the_old_run_back_untouched(trained_run, tmp_path, capsys):
    run_dir = copy_run(trained_run, tmp_path)
    before = snapshot(run_dir)
    data = tiny_dict()
    data["data"]["sources"]["digits"] = {
        "type": "npz",
        "path": str(tmp_path / "missing.npz"),
        "features": ["x"],
        "labels": ["y"],
    }
    code, _, err = run_main(capsys, "train", "--config", write(tmp_path, data), "--output-dir", run_dir, "--overwrite")
    assert code == 1 and "Traceback" not in err
    assert "missing.npz" in err and f"the previous run is back in {run_dir}" in err
    assert snapshot(run_dir) == before
    assert sorted(os.listdir(tmp_path)) == ["new.yaml", "run"]  # no directory left aside


def test_overwrite_and_resume_exclude_each_other(trained_run, tmp_path, capsys):
    run_dir = copy_run(trained_run, tmp_path)
    before = snapshot(run_dir)
    code, _, err = run_main(
        capsys, "train", "--config", write(tmp_path, tiny_dict()), "--output-dir", run_dir, "--overwrite", "--resume"
    )
    assert code == 2 and "--overwrite and --resume exclude each other" in err
    assert snapshot(run_dir) == before
