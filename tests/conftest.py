"""Fixtures: a real redis-server for the session, and chatroom servers in either mode."""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
# The chunked-body reader is shared with the load scenarios.
sys.path.insert(0, str(Path(__file__).parent.parent / "loadtests"))

from services import ChatServer, RedisServer

MODES = ["memory", "redis"]
_names = itertools.count(1)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.kill()


@pytest.fixture
def start_server(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., ChatServer]]:
    """Start chatroom servers in a mode; each test gets an empty store and stops them all."""
    started: list[ChatServer] = []

    def start(mode: str, redis: RedisServer | None = None, **kwargs) -> ChatServer:
        redis_url = None
        if mode == "redis":
            if redis is None:
                redis = request.getfixturevalue("redis_server")
                if redis.proc is None:
                    redis.start()
                if not any(s.mode == "redis" for s in started):
                    redis.flush()
            redis_url = redis.url
        server = ChatServer(mode, tmp_path / f"data{len(started)}", redis_url, **kwargs)
        started.append(server)  # stopped at the end even if it fails to start
        return server.start()

    yield start
    for server in started:
        server.stop()
    for server in started:
        # Whatever a test did, the server never printed a traceback.
        assert "Traceback" not in server.output(), server.output()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to kill and restart."""
    server = RedisServer(tmp_path / "own-redis")
    server.workdir.mkdir()
    server.start()
    yield server
    server.kill()


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> str:
    """Each test that takes this runs once per broker: the contract is the same for both."""
    return request.param


@pytest.fixture
def server(mode: str, start_server: Callable[..., ChatServer]) -> ChatServer:
    return start_server(mode)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return names no other test uses: servers share a Redis."""
    return lambda prefix: f"{prefix}{next(_names)}"
