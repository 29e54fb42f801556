"""Text inputs: the vectorizer's vocabulary (training split only, kept by checkpoints, resume, evaluate and export),
the text stems, and raw-string serving."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import build_components, restore_components
from moe_tf.config.loader import validate_config
from moe_tf.models.text import PLACEHOLDER, TextVectorizer
from moe_tf.run import evaluate, train
from moe_tf.run_dir import read_run_config
from tests.conftest import run_fresh_python, run_main, text_dict
from tests.text_data import write_reviews_tsv
from tests.training.test_trainer import make_trainer, step_losses

STEMS = {
    "bag_mean": {"type": "bag", "pooling": "mean"},
    "bag_max": {"type": "bag", "pooling": "max"},
    "text_cnn": {"type": "text_cnn", "filters": 8, "kernel_sizes": [2, 3]},
    "transformer": {"type": "transformer", "layers": 1, "heads": 2, "ff_units": 16, "dropout": 0.0},
}


def stem_config(tsv, name, **training):
    stem = {"max_tokens": 100, "sequence_length": 12, "embedding_dim": 16, **STEMS[name]}
    config = text_dict(tsv, training={"steps": 30, **training})
    config["model"]["stems"] = {"text": stem}
    return validate_config(config)


@pytest.mark.parametrize("name", sorted(STEMS))
def test_each_text_stem_learns_the_topic(reviews_tsv, name):
    trainer, data = make_trainer(stem_config(reviews_tsv, name), tf.distribute.get_strategy())
    before = trainer.evaluate(data.eval_dataset("eval", 64))
    step_losses(trainer, data, 14)  # 21 steps
    after = trainer.evaluate(data.eval_dataset("eval", 64))
    assert after["loss"] < 0.8 * before["loss"]
    assert after["tasks"]["topic"]["accuracy"] > 0.6  # chance: 1/3


@pytest.mark.parametrize("name", sorted(STEMS))
def test_padding_does_not_change_a_stem(reviews_tsv, name):
    """Masked pooling and attention: the same text padded to 12 or to 20 ids gives the same features."""
    from moe_tf.models.stems import STEMS as REGISTRY

    params = {"max_tokens": 100, "sequence_length": 20, "embedding_dim": 8, **STEMS[name]}
    stem = REGISTRY.get(params.pop("type"))(**params)
    short = np.array([[5, 9, 3, 7, 0, 0, 0, 0, 0, 0, 0, 0], [4, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]], np.int32)
    long = np.pad(short, [(0, 0), (0, 8)])
    np.testing.assert_allclose(stem(short).numpy(), stem(long).numpy(), atol=1e-5)
    empty = stem(np.zeros((1, 12), np.int32)).numpy()
    assert np.all(np.isfinite(empty))


def test_word_dropout_from_yaml_trains_and_resumes_exactly(reviews_tsv, tmp_path, capsys):
    """A source's `token_dropout` in a YAML through `moe-tf train`; a run stopped at step 10 and resumed deletes the
    same words as the one that was not (the deletions are seeded by epoch and batch; what they delete is checked in
    tests/data/test_delimited.py)."""
    import yaml

    from tests.training.test_trainer import _weights

    data = text_dict(reviews_tsv, training={"steps": 20, "checkpoint_every": 10, "eval_every": 10})
    data["data"]["sources"]["reviews"]["token_dropout"] = 0.3
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(data))
    code, _, err = run_main(
        capsys, "train", "--config", tmp_path / "c.yaml", "--output-dir", tmp_path / "straight", "--no-export"
    )
    assert code == 0, err[-3000:]
    code, _, err = run_main(
        capsys,
        "train",
        "--config",
        tmp_path / "c.yaml",
        "--output-dir",
        tmp_path / "resumed",
        "--no-export",
        "--set",
        "training.steps=10",
    )
    assert code == 0, err[-3000:]
    config = read_run_config(str(tmp_path / "resumed"))
    assert config.data.sources["reviews"].token_dropout == 0.3
    config.training.steps = 20
    train(config, str(tmp_path / "resumed"), resume=True, export=False)
    a, b = _weights(str(tmp_path / "straight")), _weights(str(tmp_path / "resumed"))
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_vocabulary_comes_from_the_training_split_only(tmp_path):
    write = lambda name, rows: (tmp_path / name).write_text("text\tlabel\n" + "".join(f"{r}\n" for r in rows))  # noqa: E731
    write("train.tsv", [f"alpha beta\t{i % 2}" for i in range(40)])
    write("test.tsv", ["gamma alpha\t0", "beta\t1"])
    config = text_dict(tmp_path)
    config["data"]["sources"]["reviews"] = {
        "type": "tsv",
        "train": str(tmp_path / "train.tsv"),
        "test": str(tmp_path / "test.tsv"),
        "text": ["text"],
        "labels": ["label"],
        "eval_fraction": 0.0,
    }
    config["tasks"] = [{"name": "t", "dataset": "reviews", "label": "label", "type": "binary"}]
    config["model"]["stems"]["text"]["ngrams"] = 1
    parts = build_components(validate_config(config), training=False)
    vectorizer = parts.model.text_vectorizers()["text"][0]
    assert vectorizer.vocabulary() == ["", "[UNK]", "beta", "alpha"] or vectorizer.vocabulary() == [
        "",
        "[UNK]",
        "alpha",
        "beta",
    ]
    ids = next(iter(parts.data.eval_dataset("test", 2)))[0]["text"].numpy()
    alpha = vectorizer.vocabulary().index("alpha")
    assert ids[0, :3].tolist() == [1, alpha, 0]  # "gamma" is only in the test file: unknown


def test_the_vocabulary_is_in_the_checkpoint(text_run):
    run_dir, _, _ = text_run
    path = tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints"))
    keys = [k for k, _ in tf.train.list_variables(path) if k.startswith("vocabulary/text")]
    assert keys, tf.train.list_variables(path)
    stored = json.loads(tf.train.load_checkpoint(path).get_tensor(keys[0]))
    assert stored[:2] == ["", "[UNK]"] and "great" in stored and "team" in stored and len(stored) <= 100


def with_other_training_text(tsv):
    """Rewrites the training file with other reviews (another vocabulary order); returns a restore function."""
    original = open(tsv).read()
    write_reviews_tsv(tsv, n=400, seed=99)
    lines = open(tsv).read().splitlines()
    with open(tsv, "w") as f:  # new words, so a vocabulary rebuilt from this file would differ
        f.write("\n".join([lines[0]] + [f"zzz{i} qqq{i} " + line for i, line in enumerate(lines[1:])]) + "\n")

    def restore():
        with open(tsv, "w") as f:
            f.write(original)

    return restore


def test_evaluate_and_export_keep_the_trained_vocabulary(text_run, tmp_path):
    """With the training file rewritten (a vocabulary rebuilt from it would differ), the restored model, `evaluate`
    and an export made then all use the trained vocabulary: the same logits as the model restored before, the
    evaluation the model restored before gives on the (rewritten) test split, and served probabilities equal to
    that model's."""
    from moe_tf.run import export

    run_dir, metrics, tsv = text_run
    assert evaluate(run_dir, "test")["tasks"] == metrics["tasks"]
    trained_model = restore_components(run_dir)[0].model
    trained = trained_model.text_vectorizers()["text"][0].vocabulary()
    assert not any(t.startswith("zzz") for t in trained)
    expected = trained_model({"text": tf.constant(TEXTS)}, training=False)["outputs"]
    restore = with_other_training_text(tsv)
    try:
        parts, _ = restore_components(run_dir)
        assert parts.model.text_vectorizers()["text"][0].vocabulary() == trained
        logits = parts.model({"text": tf.constant(TEXTS)}, training=False)["outputs"]
        during = evaluate(run_dir, "test")
        hits, count = 0, 0
        for x, y, w in parts.data.eval_dataset("test", 64):
            topic = trained_model(x, training=False)["outputs"]["topic"].numpy()
            labelled = w["topic"].numpy() > 0
            hits += int((np.argmax(topic, -1) == y["topic"].numpy())[labelled].sum())
            count += int(labelled.sum())
        out = export(run_dir, str(tmp_path / "export"))
    finally:
        restore()
    for task in ("topic", "sentiment"):
        np.testing.assert_allclose(logits[task].numpy(), expected[task].numpy(), rtol=1e-6, atol=1e-6)
    assert count > 50 and during["tasks"]["topic"]["accuracy"] == pytest.approx(hits / count, abs=1e-6)
    served = tf.saved_model.load(out).signatures["task_topic"](text=tf.constant(TEXTS))
    np.testing.assert_allclose(
        served["probabilities"].numpy(), keras.ops.softmax(expected["topic"]).numpy(), rtol=1e-4, atol=1e-6
    )


def test_resume_restores_the_vocabulary_instead_of_rebuilding_it(text_run, tmp_path):
    run_dir, _, tsv = text_run
    copy = str(tmp_path / "run")
    shutil.copytree(run_dir, copy)
    config = read_run_config(copy)
    trained = json.loads(
        tf.train.load_checkpoint(tf.train.latest_checkpoint(f"{copy}/checkpoints")).get_tensor(
            next(
                k
                for k, _ in tf.train.list_variables(tf.train.latest_checkpoint(f"{copy}/checkpoints"))
                if k.startswith("vocabulary/text")
            )
        )
    )
    restore = with_other_training_text(tsv)
    try:
        config.training.epochs += 1
        train(config, copy, resume=True, export=False)
    finally:
        restore()
    latest = tf.train.latest_checkpoint(f"{copy}/checkpoints")
    key = next(k for k, _ in tf.train.list_variables(latest) if k.startswith("vocabulary/text"))
    assert int(latest.rsplit("-", 1)[1]) > int(tf.train.latest_checkpoint(f"{run_dir}/checkpoints").rsplit("-", 1)[1])
    assert json.loads(tf.train.load_checkpoint(latest).get_tensor(key)) == trained


FRESH = r"""
import json, sys
sys.modules["moe_tf"] = None  # moe_tf cannot be imported: the export must not need it
import tensorflow as tf
m = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
out = {k: v.numpy().tolist() for k, v in m.signatures["serving_default"](text=texts).items()}
topic = {k: v.numpy().tolist() for k, v in m.signatures["task_topic"](text=texts).items()}
print(json.dumps({"out": out, "topic": topic}))
"""

TEXTS = ["the team was great", "so dull pasta", "", "a very awful phone and unknownword", "Great  GOAL!"]


def test_export_serves_raw_strings_without_moe_tf(text_run, tmp_path):
    run_dir, _, _ = text_run
    parts, _ = restore_components(run_dir)
    logits = parts.model({"text": tf.constant(TEXTS)}, training=False)["outputs"]
    got = run_fresh_python(FRESH, f"{run_dir}/export", json.dumps(TEXTS), cwd=tmp_path)
    expected = keras.ops.softmax(logits["topic"]).numpy()
    np.testing.assert_allclose(got["out"]["topic"], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(
        np.array(got["out"]["sentiment"])[:, 1], tf.sigmoid(logits["sentiment"][:, 0]).numpy(), rtol=1e-4, atol=1e-6
    )
    assert got["topic"]["class_id"] == np.argmax(expected, -1).tolist()
    assert got["topic"]["class_id"][0] == 1  # "team" is a sports word: classes are food, sports, tech


def test_predict_reads_txt_tsv_csv_and_jsonl(text_run, tmp_path, capsys):
    """The same texts as .txt, .tsv, .csv (a quoted cell holding a comma, an extra column) and .jsonl: the same
    predictions, which are the in-process model's probabilities."""
    import csv

    run_dir, _, _ = text_run
    texts = TEXTS[:2] + TEXTS[3:] + ["great pasta, awful phone"]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n")
    (tmp_path / "in.tsv").write_text("id\ttext\n" + "".join(f"{i}\t{t}\n" for i, t in enumerate(texts)))
    with open(tmp_path / "in.csv", "w", newline="") as f:
        csv.writer(f).writerows([["id", "text"], *([i, t] for i, t in enumerate(texts))])
    assert '"great pasta, awful phone"' in (tmp_path / "in.csv").read_text()
    (tmp_path / "in.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    outputs = []
    for name in ("in.txt", "in.tsv", "in.csv", "in.jsonl"):
        code, out, err = run_main(capsys, "predict", f"{run_dir}/export", "--input", tmp_path / name)
        assert code == 0, err
        outputs.append([json.loads(line) for line in out.strip().splitlines()])
    assert outputs[0] == outputs[1] == outputs[2] == outputs[3] and len(outputs[0]) == 5
    assert outputs[0][0]["topic"]["class"] == "sports" and set(outputs[0][0]) == {"sentiment", "topic"}
    logits = restore_components(run_dir)[0].model({"text": tf.constant(texts)}, training=False)["outputs"]
    topic = keras.ops.softmax(logits["topic"]).numpy()
    np.testing.assert_allclose([r["topic"]["probabilities"] for r in outputs[2]], topic, atol=2e-6)
    assert [r["topic"]["class"] for r in outputs[2]] == [["food", "sports", "tech"][k] for k in topic.argmax(-1)]
    sentiment = tf.sigmoid(logits["sentiment"][:, 0]).numpy()
    np.testing.assert_allclose([r["sentiment"]["probabilities"][1] for r in outputs[2]], sentiment, atol=2e-6)
    assert [r["sentiment"]["class"] for r in outputs[2]] == ["pos" if p > 0.5 else "neg" for p in sentiment]


@pytest.mark.parametrize(
    "content, message",
    [
        ("x\ty\n1\t2\n", r"in\.tsv: no column named like a model input; the header names x, y, the model takes text"),
        ('{"text": 3}\n', r"text input 'text' must be one string per example"),
        ('{"text": "a"}\n{"txt": "b"}\n', r"line 2: keys \['txt'\] differ from line 1's \['text'\]"),
        ("not json\n", r"line 1: not JSON"),
    ],
)
def test_predict_bad_text_inputs(text_run, tmp_path, capsys, content, message):
    import re

    run_dir, _, _ = text_run
    path = tmp_path / ("in.tsv" if content.startswith("x") else "in.jsonl")
    path.write_text(content)
    code, _, err = run_main(capsys, "predict", f"{run_dir}/export", "--input", path)
    assert code == 1 and re.search(message, err), err


def test_text_under_mirrored_matches_default(reviews_tsv, mirrored):
    config = stem_config(reviews_tsv, "bag_mean")
    default, data = make_trainer(config, tf.distribute.get_strategy())
    other, _ = make_trainer(config, mirrored, default.model.get_weights())
    assert (
        other.model.text_vectorizers()["text"][0].vocabulary()
        == default.model.text_vectorizers()["text"][0].vocabulary()
    )
    np.testing.assert_allclose(step_losses(default, data, 4), step_losses(other, data, 4), atol=1e-5)


def test_a_text_vectorizer_without_vocabulary_is_not_exported(reviews_tsv, tmp_path):
    from moe_tf.export.saved_model import export_model

    config = validate_config(text_dict(reviews_tsv))
    parts = build_components(config, training=False)
    for vectorizer in parts.model.text_vectorizers()["text"]:
        vectorizer.set_vocabulary(PLACEHOLDER)  # as a model built without data or a checkpoint has
    assert not parts.model.text_vectorizers()["text"][0].has_vocabulary
    with pytest.raises(ValueError, match="input 'text' has no vocabulary"):
        export_model(parts.model, config, parts.data, str(tmp_path / "export"))


def test_vectorizer_passes_ids_through():
    v = TextVectorizer(max_tokens=10, sequence_length=4)
    v.adapt(tf.data.Dataset.from_tensor_slices(["a b", "b"]).batch(2))
    ids = v(tf.constant(["b a c"]))
    assert ids.dtype == tf.int32 and ids.numpy().tolist() == [[2, 3, 1, 0]]
    assert v(ids).numpy().tolist() == ids.numpy().tolist()
