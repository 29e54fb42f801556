"""Two real `multi_worker` processes on localhost match one worker with the same global batch."""

import json
import os
import socket
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, text_dict
from tests.text_data import write_reviews_tsv


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_match_one(tmp_path):
    """Two sources and two modalities (digits images, the reviews TSV's text) under MGDA-UB.

    MGDA-UB sums the tasks' representation-gradient Gram matrix across the workers *before* its backward pass, then
    its gradients once after it, and keeps state (the last weights, used by the eval loss): both reductions every
    weighting goes through. Each batch comes from one source, so each step skips one stem; the text stem's
    embedding gradient is sparse (it made the workers' collectives disagree until it was densified). Every worker
    builds the vocabulary from the same split and vectorizes its shard in its input pipeline. XLA's split step is
    checked across replicas by the mirrored test.
    """
    data = text_dict(write_reviews_tsv(tmp_path / "reviews.tsv"),
                     training={"steps": 8, "eval_every": 4, "batch_size": 64, "log_every": 4, "jit_compile": False,
                               "weighting": {"type": "mgda", "upper_bound": True}},
                     logging={"progress": "lines"})
    data["data"]["sources"]["digits"] = {"type": "digits"}
    data["data"]["sampling"] = {"type": "uniform"}
    # `high` misses its label on digits 3, 4, 8 and 9 and `sentiment` every 5th label: a task's loss is a mean over
    # a varying number of labelled examples per global batch, which must come out the same on one worker and on two
    data["tasks"] += [{"name": "digit", "dataset": "digits"},
                      {"name": "high", "dataset": "digits", "type": "binary",
                       "label_map": {0: 0, 1: 0, 2: 0, 5: 1, 6: 1, 7: 1}}]
    data["model"].update(stems={**data["model"]["stems"], "image": {"type": "conv", "filters": [8]}},
                         fusion_units=16, trunk={"units": [32]})
    tasks = [t["name"] for t in data["tasks"]]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("TF_CONFIG", None)
    base = [sys.executable, "-m", "moe_tf", "train", "--config", str(tmp_path / "c.yaml")]
    single = subprocess.run(base + ["--output-dir", str(tmp_path / "single")], capture_output=True, text=True,
                            timeout=300, env=env, cwd=REPO)
    assert single.returncode == 0, single.stderr[-3000:]

    workers = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        procs.append(subprocess.Popen(
            base + ["--output-dir", str(tmp_path / f"worker{index}"), "--set", "training.strategy=multi_worker"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
            env={**env, "TF_CONFIG": json.dumps(tf_config)}))
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outputs):
        assert p.returncode == 0, err[-3000:]
    assert "strategy: multi_worker" in outputs[0][1] and "with 2 replica(s)" in outputs[0][1]
    assert not (tmp_path / "worker1" / "metrics.json").exists()  # only the chief writes

    one = json.loads((tmp_path / "single" / "metrics.json").read_text())
    two = json.loads((tmp_path / "worker0" / "metrics.json").read_text())
    assert one["step"] == two["step"] == 8
    assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
    for task in tasks:
        for metric, value in one["tasks"][task].items():
            assert two["tasks"][task][metric] == pytest.approx(value, abs=1e-5), (task, metric)
    assert (tmp_path / "worker0" / "export" / "saved_model.pb").exists()
