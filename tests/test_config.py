"""Settings: defaults, then CHATROOM_* variables, then flags, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatroom.config import Config, ConfigError, RateLimit


def test_defaults() -> None:
    config = Config.from_env({})
    assert (config.host, config.port, config.keepalive) == ("0.0.0.0", 5000, 15.0)
    assert config.rate_limit == RateLimit(10, 5.0)
    assert (config.client_buffer, config.history) == (1000, 1000)
    assert config.redis_url is None and not config.memory and not config.private
    assert "chatroom" in str(config.data_dir)


def test_environment_overrides_defaults_and_values_override_environment() -> None:
    env = {"CHATROOM_PORT": "6000", "CHATROOM_RATE_LIMIT": "20/10", "CHATROOM_PRIVATE": "1",
           "CHATROOM_DATA_DIR": "/tmp/x", "CHATROOM_KEEPALIVE": "2.5",
           "CHATROOM_REDIS_URL": "redis://h:1/0", "CHATROOM_HISTORY": "50"}
    config = Config.from_env(env)
    assert config.port == 6000 and config.private and config.keepalive == 2.5
    assert config.rate_limit == RateLimit(20, 10.0)
    assert config.data_dir == Path("/tmp/x") and config.history == 50
    assert config.redis_url == "redis://h:1/0"
    assert config.updated({"port": "7000"}).port == 7000


def test_rate_limit_can_be_turned_off() -> None:
    assert Config.from_env({"CHATROOM_RATE_LIMIT": "off"}).rate_limit is None


@pytest.mark.parametrize(
    ("name", "value", "words"),
    [("PORT", "abc", "whole number"), ("PORT", "70000", "between"),
     ("RATE_LIMIT", "lots", "10/5"), ("RATE_LIMIT", "0/5", "10/5"),
     ("PRIVATE", "maybe", "1 or 0"), ("KEEPALIVE", "-1", "between"),
     ("WORKERS", "0", "between")],
)
def test_bad_values_are_named_in_the_error(name: str, value: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Config.from_env({f"CHATROOM_{name}": value})
    assert f"CHATROOM_{name}" in str(caught.value)
    assert words in str(caught.value)


def test_the_secret_is_generated_once_and_private(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path / "data")
    first = config.load_secret_key()
    assert len(first) >= 32
    assert config.load_secret_key() == first
    assert (tmp_path / "data" / "secret_key").stat().st_mode & 0o077 == 0
    assert Config(data_dir=tmp_path / "other").load_secret_key() != first
    assert Config(data_dir=tmp_path, secret_key="given").load_secret_key() == "given"
