"""The shipped TFDS configs (MNIST, CIFAR-10, IMDB, AG News, GLUE SST-2) train end to end on mocked TFDS data
(nothing downloads here)."""

import pytest

from moe_tf.config.loader import load_config
from moe_tf.run import train
from tests.conftest import REPO

pytestmark = pytest.mark.usefixtures("tfds_online")

SMALL_STEMS = {
    "mnist_mmoe": ["model.stem.filters=[4]"],
    "cifar10_mmoe": ["model.stem.widths=[4,8]", "model.stem.blocks=1"],  # the residual stem, two stages
    "cifar10_shared_bottom": ["model.stem.widths=[4]", "model.stem.blocks=1"],
}


@pytest.mark.parametrize("name", sorted(SMALL_STEMS))
def test_tfds_config_trains_on_mock_data(name, tmp_path):
    import tensorflow_datasets as tfds

    overrides = [
        *SMALL_STEMS[name],
        "training.steps=2",
        "training.batch_size=8",
        "logging.progress=none",
        "model.trunk.units=[8]",
        "model.experts.units=[8]",
        "model.tower.units=[4]",
        "data.shuffle_buffer=16",
    ]
    config = load_config(f"{REPO}/configs/{name}.yaml", overrides)
    with tfds.testing.mock_data(num_examples=40):
        metrics = train(config, str(tmp_path / name))
    assert metrics["step"] == 2
    assert set(metrics["tasks"]) == {t.name for t in config.tasks}
    assert (tmp_path / name / "export" / "saved_model.pb").exists()
    assert config.model.stem.type == ("conv" if name.startswith("mnist") else "resnet")


TEXT_OVERRIDES = [
    "training.steps=2",
    "training.batch_size=8",
    "logging.progress=none",
    "model.experts.units=[8]",
    "model.tower.units=[4]",
    "data.shuffle_buffer=16",
    "model.stems.text.max_tokens=50",
    "model.stems.text.embedding_dim=8",
    "model.stems.text.sequence_length=16",
]


@pytest.mark.parametrize(
    "name, extra",
    [("imdb_reviews_tfds", []), ("glue_sst2_tfds", []), ("ag_news_tfds", ["data.sources.ag_news.token_dropout=0.5"])],
)
def test_tfds_text_config_trains_on_mock_data(name, extra, tmp_path):
    import tensorflow_datasets as tfds

    config = load_config(f"{REPO}/configs/{name}.yaml", TEXT_OVERRIDES + extra)
    with tfds.testing.mock_data(num_examples=40):
        metrics = train(config, str(tmp_path / name))
    assert metrics["step"] == 2
    meta = (tmp_path / name / "export" / "moe_tf_export.json").read_text()
    assert '"modality": "text"' in meta and '"dtype": "string"' in meta


def test_tfds_text_key_must_be_text():
    import tensorflow_datasets as tfds

    from moe_tf.errors import DataError

    config = load_config(f"{REPO}/configs/imdb_reviews_tfds.yaml", ["data.sources.imdb.text_key=label"])
    with (
        tfds.testing.mock_data(num_examples=10),
        pytest.raises(DataError, match="feature 'label' is ClassLabel, not Text"),
    ):
        from moe_tf.data import build_task_data

        build_task_data(config)


def test_token_dropout_needs_a_text_key():
    from moe_tf.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data\.sources\.mnist: token_dropout=0\.5 needs `text_key`"):
        load_config(f"{REPO}/configs/mnist_mmoe.yaml", ["data.sources.mnist.token_dropout=0.5"])
