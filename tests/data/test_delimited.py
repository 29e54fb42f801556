"""The csv/tsv source: columns named in the config, string labels, missing labels, sample weights, bad files."""

import numpy as np
import pytest
import tensorflow as tf

from moe_tf.components import build_components
from moe_tf.config.loader import validate_config
from moe_tf.data import build_task_data
from moe_tf.errors import ConfigError, DataError
from moe_tf.training.objectives import batch_stats
from tests.conftest import run_main, text_dict


def write(path, text: str | bytes) -> str:
    with open(path, "wb") as f:
        f.write(text if isinstance(text, bytes) else text.encode())
    return str(path)


def source(path, **kw) -> dict:
    return {"type": "tsv" if str(path).endswith(".tsv") else "csv", "path": str(path), **kw}


def load(path, tasks=None, **kw):
    config = text_dict(path)
    config["data"]["sources"]["reviews"] = source(path, **kw)
    if tasks is not None:
        config["tasks"] = tasks
    return build_task_data(validate_config(config))


def test_string_labels_become_sorted_class_names(reviews_tsv):
    data = load(reviews_tsv, text=["text"], labels=["sentiment", "topic"])
    sentiment, topic = data.tasks
    assert sentiment.class_names == ["neg", "pos"] and topic.class_names == ["food", "sports", "tech"]
    assert data.features["text"].modality == "text" and data.features["text"].dtype == "string"
    assert sum(data.sources["reviews"].sizes.values()) == 400
    x, y = data.sources["reviews"].arrays["train"]
    assert isinstance(x["text"][0], str) and set(np.unique(y["sentiment"])) == {-1, 0, 1}


def test_declared_classes_set_the_ids(reviews_tsv):
    tasks = [{"name": "topic", "dataset": "reviews", "label": "topic", "class_names": None}]
    data = load(
        reviews_tsv, tasks=tasks, text=["text"], labels=["topic"], classes={"topic": ["tech", "sports", "food"]}
    )
    assert data.tasks[0].class_names == ["tech", "sports", "food"]
    x, y = data.sources["reviews"].arrays["train"]
    for text, label in zip(x["text"][:50], y["topic"][:50]):
        expected = (
            next(
                i
                for i, words in enumerate((["laptop", "phone", "chip", "screen"], ["match", "goal", "team", "coach"]))
                if any(w in text.split() for w in words)
            )
            if label != 2
            else 2
        )
        assert label == expected


def test_numeric_columns_are_one_input(reviews_tsv):
    tasks = [{"name": "topic", "dataset": "reviews", "label": "topic"}]
    data = load(reviews_tsv, tasks=tasks, numeric=["stars", "weight"], labels=["topic"])
    assert data.features["numeric"].shape == (2,) and data.features["numeric"].modality == "numeric"
    x, _ = data.sources["reviews"].arrays["train"]
    assert x["numeric"].dtype == np.float32 and x["numeric"].shape[1] == 2


def one_batch(config, batch=400):
    """The components of `config` and one evaluation batch holding every example of the training split."""
    parts = build_components(validate_config(config))
    ds = parts.data._complete(0, parts.data.sources["reviews"].splits["train"].batch(batch))
    return parts, next(iter(ds))


def test_empty_label_cells_are_masked_not_class_zero(reviews_tsv):
    """The loss over a batch with empty `sentiment` cells is the mean over the labelled rows only; reading an empty
    cell as class 0 ("neg") would change it."""
    parts, (inputs, labels, weights) = one_batch(text_dict(reviews_tsv))
    sentiment = labels["sentiment"].numpy()
    assert (sentiment == -1).sum() > 20 and set(np.unique(sentiment)) == {-1, 0, 1}
    assert np.all(weights["sentiment"].numpy()[sentiment == -1] == 0)
    parts.model.heads["sentiment"].bias.assign([2.0])  # a model leaning to "pos", so "neg" rows cost more
    outputs = parts.model(inputs, training=False)
    _, losses = batch_stats(parts.data.tasks, outputs, labels, weights)
    logit = outputs["outputs"]["sentiment"].numpy()[:, 0].astype(np.float64)
    per_example = np.logaddexp(0, logit) - np.clip(sentiment, 0, 1) * logit  # binary cross-entropy
    labelled = sentiment >= 0
    np.testing.assert_allclose(float(losses["sentiment"]), per_example[labelled].mean(), rtol=1e-5)
    as_class_zero = per_example.mean()  # what the loss would be with empty cells read as "neg"
    assert abs(as_class_zero - per_example[labelled].mean()) > 0.1


def test_sample_weights_give_the_weighted_mean(reviews_tsv):
    config = text_dict(reviews_tsv)
    config["data"]["sources"]["reviews"]["weights"] = {"topic": "weight"}
    parts, (inputs, labels, weights) = one_batch(config)
    raw = parts.data.sources["reviews"].arrays["train"][1]["topic__weight"]
    assert set(np.unique(raw)) == {1.0, 2.0, 3.0}
    np.testing.assert_allclose(weights["topic"].numpy(), raw / raw.sum(), rtol=1e-6)
    parts.model.heads["topic"].bias.assign([3.0, 0.0, -3.0])  # per-class losses that differ a lot
    outputs = parts.model(inputs, training=False)
    _, losses = batch_stats(parts.data.tasks, outputs, labels, weights)
    logits = outputs["outputs"]["topic"].numpy().astype(np.float64)
    ce = -(logits[np.arange(len(logits)), labels["topic"].numpy()] - np.log(np.exp(logits).sum(-1)))
    np.testing.assert_allclose(float(losses["topic"]), (ce * raw).sum() / raw.sum(), rtol=1e-5)
    assert abs(ce.mean() - (ce * raw).sum() / raw.sum()) > 0.01  # the weights change the loss


def test_per_split_files_and_a_header_less_file(tmp_path):
    write(tmp_path / "train.tsv", "".join(f"word{i % 7} more\t{'ab'[i % 2]}\n" for i in range(50)))
    write(tmp_path / "test.tsv", "word1 more\ta\nword2\tb\n")
    tasks = [{"name": "letter", "dataset": "reviews", "label": "label"}]
    config = text_dict(tmp_path / "train.tsv")
    config["data"]["sources"]["reviews"] = {
        "type": "tsv",
        "train": str(tmp_path / "train.tsv"),
        "test": str(tmp_path / "test.tsv"),
        "header": False,
        "columns": ["words", "label"],
        "text": {"text": "words"},
        "labels": ["label"],
        "eval_fraction": 0.2,
    }
    config["tasks"] = tasks
    data = build_task_data(validate_config(config))
    sizes = data.sources["reviews"].sizes
    assert sizes == {"train": 40, "eval": 10, "test": 2} and data.tasks[0].class_names == ["a", "b"]
    assert list(data.sources["reviews"].arrays["test"][0]["text"]) == ["word1 more", "word2"]


def test_csv_quoting(tmp_path):
    rows = ['"hello, world",1', '"say ""hi""",0'] * 10
    path = write(tmp_path / "q.csv", "text,label\n" + "\n".join(rows) + "\n")
    tasks = [{"name": "t", "dataset": "reviews", "label": "label", "type": "binary"}]
    data = load(path, tasks=tasks, text=["text"], labels=["label"], test_fraction=0.1)
    texts = set(data.sources["reviews"].arrays["train"][0]["text"])
    assert texts == {"hello, world", 'say "hi"'}


GOOD = "text\tlabel\tx\nfine day\ta\t1.5\nbad day\tb\t2.5\nok\ta\t0.5\n"
BAD_FILES = {
    "wrong column": (GOOD, dict(text=["txt"]), r"bad\.tsv: no column 'txt' .*the columns are: text, label, x"),
    "ragged row": (GOOD + "one\ttwo\tthree\tfour\n", {}, r"bad\.tsv, line 5: 4 cells, expected 3"),
    "not utf-8": (GOOD.encode() + b"caf\xe9\ta\t1\n", {}, r"bad\.tsv, line 5: not UTF-8 text \(byte 0xe9"),
    "infinite feature": (
        GOOD + "x\ta\t-inf\n",
        dict(numeric=["x"]),
        r"bad\.tsv, line 5: feature 'x' is -inf; features cannot be infinite",
    ),
    "empty weight": (
        "text\tlabel\tw\nx\ta\t1\ny\tb\t\n",
        dict(weights={"label": "w"}),
        r"bad\.tsv, line 3: sample weight 'w' is empty",
    ),
    "not a number": (GOOD + "x\ta\tlots\n", dict(numeric=["x"]), r"bad\.tsv, line 5: feature 'x' is 'lots'"),
    "undeclared class": (
        GOOD + "x\tc\t1\n",
        dict(classes={"label": ["a", "b"]}),
        r"bad\.tsv, line 5: label 'label' is 'c', which is not one of the declared classes "
        r"\(data\.sources\.reviews\.classes\.label\) \(a, b\)",
    ),
    "negative id": ("text\tlabel\nx\t1\ny\t-3\n", {}, r"bad\.tsv, line 3: label 'label' is -3"),
    "empty file": ("", {}, r"bad\.tsv: empty file"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files_name_the_file_and_line(tmp_path, case):
    content, extra, message = BAD_FILES[case]
    path = write(tmp_path / "bad.tsv", content)
    tasks = [{"name": "t", "dataset": "reviews", "label": "label"}]
    kw = {"text": ["text"], "labels": ["label"], "eval_fraction": 0.0, "test_fraction": 0.0, **extra}
    with pytest.raises(DataError, match=message):
        load(path, tasks=tasks, **kw)


def test_unseen_class_in_a_test_file(tmp_path):
    write(tmp_path / "train.tsv", "text\tlabel\na\tx\nb\ty\n")
    write(tmp_path / "test.tsv", "text\tlabel\nc\tx\nd\tz\n")
    config = text_dict(tmp_path)
    config["data"]["sources"]["reviews"] = {
        "type": "tsv",
        "train": str(tmp_path / "train.tsv"),
        "test": str(tmp_path / "test.tsv"),
        "text": ["text"],
        "labels": ["label"],
        "eval_fraction": 0.0,
    }
    config["tasks"] = [{"name": "t", "dataset": "reviews", "label": "label"}]
    with pytest.raises(
        DataError,
        match=r"test\.tsv, line 3: label 'label' is 'z', which is not one of the classes "
        r"of the training file \(x, y\)",
    ):
        build_task_data(validate_config(config))


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"train": "a.tsv"}, "give either `path`"),
        ({"text": [], "numeric": []}, "name at least one `text`, `numeric` or `categorical` column"),
        ({"classes": {"nope": ["a"]}}, r"classes\.nope: not one of the labels"),
        ({"header": False}, None),
        ({"text": ["bad name"]}, "text input 'bad name' is not an identifier"),
        ({"text": [], "numeric": ["x"], "token_dropout": 0.5}, r"token_dropout=0\.5 needs a `text` column"),
        ({"token_dropout": 1.0}, r"data\.sources\.reviews\.token_dropout: expected number < 1\.0, got 1\.0"),
    ],
)
def test_config_errors(reviews_tsv, bad, message):
    config = text_dict(reviews_tsv)
    config["data"]["sources"]["reviews"].update(bad)
    if message is None:  # a header-less file needs its column names
        with pytest.raises(DataError, match=r"reviews\.tsv: `header: false` needs `columns:`"):
            build_task_data(validate_config(config))
        return
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_a_weight_column_is_not_a_label(reviews_tsv):
    config = text_dict(reviews_tsv)
    config["data"]["sources"]["reviews"]["weights"] = {"topic": "weight"}
    config["tasks"][1]["label"] = "topic__weight"
    with pytest.raises(ConfigError, match=r"tasks\[1\]\.label: source 'reviews' has no label 'topic__weight'"):
        build_task_data(validate_config(config))


def test_cli_reports_a_bad_file_in_one_line(tmp_path, capsys):
    import yaml

    path = write(tmp_path / "bad.tsv", GOOD + "one\ttwo\n")
    config = text_dict(path)
    config["data"]["sources"]["reviews"].update(labels=["label"])
    config["tasks"] = [{"name": "t", "dataset": "reviews", "label": "label"}]
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
    code, out, err = run_main(capsys, "train", "--config", tmp_path / "c.yaml", "--output-dir", tmp_path / "run")
    assert code == 1 and "Traceback" not in err
    assert (
        err.strip() == f"moe-tf train: error: {path}, line 5: 2 cells, expected 3 (text, label, x); a ragged "
        "row, or a delimiter inside an unquoted field"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_text_pipeline_yields_token_ids(reviews_tsv):
    parts = build_components(validate_config(text_dict(reviews_tsv)), training=False)
    inputs, _, _ = next(iter(parts.data.eval_dataset("test", 8)))
    assert inputs["text"].dtype == tf.int32 and inputs["text"].shape == (8, 12)


def test_token_dropout_deletes_words_of_training_batches_only(reviews_tsv):
    """A source's `token_dropout`: in its training batches each token is deleted with that chance and the rest close
    up in order; eval batches are untouched; a pipeline started at step k (a resume) deletes the same words."""
    plain = build_components(validate_config(text_dict(reviews_tsv)), training=False).data
    config = text_dict(reviews_tsv)
    config["data"]["sources"]["reviews"]["token_dropout"] = 0.5
    dropping = build_components(validate_config(config), training=False).data
    # the same vocabulary: the vocabulary is built from the full training texts either way
    full = [x["text"].numpy() for x, _, _ in plain.train_dataset(32, 0, 12)]
    cut = [x["text"].numpy() for x, _, _ in dropping.train_dataset(32, 0, 12)]
    kept = sum((c != 0).sum() for c in cut) / sum((f != 0).sum() for f in full)
    assert 0.4 < kept < 0.6
    for f, c in zip(full, cut):
        for row_f, row_c in zip(f, c):
            words = list(row_c[row_c != 0])
            assert list(row_c[: len(words)]) == words  # closed up, padded at the end
            it = iter(row_f[row_f != 0])
            assert all(any(w == v for v in it) for w in words)  # a subsequence of the original, in order
    resumed = [x["text"].numpy() for x, _, _ in dropping.train_dataset(32, 7, 12)]
    for a, b in zip(cut[7:], resumed):
        np.testing.assert_array_equal(a, b)
    for (x, _, _), (y, _, _) in zip(plain.eval_dataset("eval", 32), dropping.eval_dataset("eval", 32)):
        np.testing.assert_array_equal(x["text"].numpy(), y["text"].numpy())
