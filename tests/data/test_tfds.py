"""TFDS sources: a data set that would be downloaded on a machine that cannot reach TFDS's storage fails at once
with a message naming `data_dir` and `download: false`, instead of TFDS retrying every file for minutes."""

import socket

import pytest

import moe_tf.data.tfds
from moe_tf.data.tfds import TfdsSource, unreachable_reason
from moe_tf.errors import DataError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_closed_port_is_unreachable():
    reason = unreachable_reason(("127.0.0.1", free_port()), timeout=2.0)
    assert reason is not None and "127.0.0.1" in reason


def test_a_listening_port_is_reachable():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        assert unreachable_reason(server.getsockname(), timeout=2.0) is None


def test_a_name_that_does_not_resolve_is_unreachable():
    assert "no-such-host.invalid" in unreachable_reason(("no-such-host.invalid", 443), timeout=2.0)


@pytest.fixture
def offline(monkeypatch):
    """The real probe, pointed at a closed loopback port (an unreachable network); tfds.load must not be reached."""
    import tensorflow_datasets as tfds

    monkeypatch.setattr(moe_tf.data.tfds, "DOWNLOAD_HOST", ("127.0.0.1", free_port()))
    loads = []

    def load(*args, **kwargs):
        loads.append(kwargs)
        raise OSError("no such data set here")

    monkeypatch.setattr(tfds, "load", load)
    return loads


def test_an_unprepared_download_fails_fast_offline(offline, tmp_path):
    source = TfdsSource(TfdsSource.Config(name="mnist", data_dir=str(tmp_path)), name="digits", seed=0)
    with pytest.raises(DataError) as err:
        source.load()
    message = str(err.value)
    assert "'mnist'" in message and "data.sources.digits" in message and str(tmp_path) in message
    assert "network is unreachable" in message and "download: false" in message and "data_dir" in message
    assert offline == []  # TFDS never started its download


def test_download_false_skips_the_check(offline, tmp_path):
    source = TfdsSource(TfdsSource.Config(name="mnist", data_dir=str(tmp_path), download=False), name="d", seed=0)
    with pytest.raises(DataError, match="cannot load TFDS data set 'mnist'"):
        source.load()
    assert len(offline) == 1 and offline[0]["download"] is False


def test_the_check_can_be_turned_off(offline, tmp_path, monkeypatch):
    monkeypatch.setenv(moe_tf.data.tfds.NETWORK_CHECK_ENV, "0")
    with pytest.raises(DataError, match="cannot load TFDS data set"):
        TfdsSource(TfdsSource.Config(name="mnist", data_dir=str(tmp_path)), name="d", seed=0).load()
    assert len(offline) == 1


def test_behind_a_proxy_tfds_is_left_to_download(offline, tmp_path, monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    with pytest.raises(DataError, match="cannot load TFDS data set"):
        TfdsSource(TfdsSource.Config(name="mnist", data_dir=str(tmp_path)), name="d", seed=0).load()
    assert len(offline) == 1
