"""Which broker a server uses: SPEC "Broker choice"."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from chatroom.broker import BrokerUnavailable, open_broker
from chatroom.config import Config

from services import RedisServer, free_port


def test_no_url_and_no_local_redis_means_in_process(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, default_redis_url=f"redis://127.0.0.1:{free_port()}/0")
    broker = open_broker(config)
    try:
        assert broker.kind == "memory"
        assert "in-process" in broker.describe()
    finally:
        broker.close()


def test_no_url_and_a_local_redis_means_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    broker = open_broker(Config(data_dir=tmp_path, default_redis_url=redis_server.url))
    try:
        assert broker.kind == "redis"
        assert redis_server.url in broker.describe()
    finally:
        broker.close()


def test_memory_wins_over_a_local_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    config = Config(data_dir=tmp_path, memory=True, default_redis_url=redis_server.url)
    broker = open_broker(config)
    assert broker.kind == "memory"
    broker.close()


def test_an_unreachable_explicit_redis_is_an_error(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerUnavailable) as caught:
        open_broker(Config(data_dir=tmp_path, redis_url=url))
    assert url in str(caught.value)


def test_passwords_are_not_shown(tmp_path: Path) -> None:
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    with pytest.raises(BrokerUnavailable) as caught:
        open_broker(Config(data_dir=tmp_path, redis_url=url))
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_the_command_exits_with_one_clear_line(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "chatroom", "--redis", url, "--no-browser",
         "--data-dir", str(tmp_path), "--port", str(free_port())],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode != 0
    assert time.monotonic() - began < 15
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatroom: Cannot use Redis at")
    assert "Traceback" not in done.stderr + done.stdout


def test_the_start_up_text_names_the_broker(start_server) -> None:
    memory = start_server("memory")
    assert "in-process broker" in memory.output()
    redis = start_server("redis")
    assert "using Redis at redis://127.0.0.1" in redis.output()
