"""Real services for the tests: a redis-server and chatroom servers, each on a free port."""

from __future__ import annotations

import itertools
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import requests.adapters

from sse_client import SSEStream

_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_PORTS = range(20000 + 1500 * (_WORKER % 8), 20000 + 1500 * (_WORKER % 8 + 1))
# Handed out in turn from a random start: two calls never give the same port (a group of
# servers takes several before any of them binds), until the range comes round again.
_next_port = itertools.count(random.randrange(len(_PORTS)))


def free_port() -> int:
    """Return a free loopback port, from this test process's own range.

    Each pytest-xdist worker draws from a range of its own below the kernel's ephemeral
    ports, so no other worker, and no client connection, can take it before it is used.
    """
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_next_port) % len(_PORTS)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {_PORTS.start} and {_PORTS.stop}")


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


class RedisServer:
    """A real redis-server the suite starts, and may kill and restart, on its own port."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "redis-server is not installed: run the test command from README.md, "
                "which installs it (apt-get install redis-server)."
            )
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None

    def start(self, replica_of: int | None = None, promotable: bool = True) -> None:
        """Start, empty; with ``replica_of``, as a replica of the Redis on that port (one
        Sentinel never promotes, if not ``promotable``)."""
        extra = ["--replicaof", "127.0.0.1", str(replica_of)] if replica_of else []
        if not promotable:
            extra += ["--replica-priority", "0"]
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), *extra],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.proc = None

    def save(self) -> None:
        """Write a snapshot, as a Redis with persistence would have before it died."""
        import redis

        redis.Redis.from_url(self.url).save()

    def client(self):
        import redis

        return redis.Redis.from_url(self.url)

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()


class SentinelGroup:
    """A primary, replicas and three sentinels on loopback ports, as an operator runs them.

    Sentinels declare a primary down after 1 s without an answer, so a failover under test
    takes a few seconds, not the production minute. They retry one only after 10 s: on a
    busy machine a first failover can take longer than a few seconds to finish, and a
    second one meanwhile may promote the old primary, just restarted and still empty.
    """

    SERVICE = "chat"

    def __init__(self, workdir: Path, replicas: int = 1) -> None:
        self.workdir = workdir
        self.primary = self._redis("primary")
        self.replicas = [self._redis(f"replica{i}") for i in range(replicas)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.sentinels: list[subprocess.Popen] = []
        self.url = "redis+sentinel://" + ",".join(
            f"127.0.0.1:{port}" for port in self.sentinel_ports
        ) + f"/{self.SERVICE}"

    def _redis(self, name: str) -> RedisServer:
        server = RedisServer(self.workdir / name)
        server.workdir.mkdir(parents=True)
        return server

    def start(self) -> SentinelGroup:
        """Start every server and wait until the group is whole; stop them all if it is not."""
        try:
            return self._start()
        except BaseException:
            self.stop()  # a fixture that fails in setup gets no teardown
            raise

    def _start(self) -> SentinelGroup:
        self.primary.start()
        for replica in self.replicas:
            replica.start(replica_of=self.primary.port)
        for i, port in enumerate(self.sentinel_ports):
            folder = self.workdir / f"sentinel{i}"
            folder.mkdir()
            conf = folder / "sentinel.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
                f"sentinel monitor {self.SERVICE} 127.0.0.1 {self.primary.port} 2\n"
                f"sentinel down-after-milliseconds {self.SERVICE} 1000\n"
                f"sentinel failover-timeout {self.SERVICE} 10000\n"
                f"sentinel parallel-syncs {self.SERVICE} 1\n"
            )
            self.sentinels.append(subprocess.Popen(
                [self.primary.binary, str(conf), "--sentinel"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            ))
            wait_for_port(port)
        # Ready once every sentinel knows the others and every replica is in sync.
        self.wait(lambda: all(
            len(s.sentinel_sentinels(self.SERVICE)) == 2
            and sum(r["flags"] == "slave" and r["master-link-status"] == "ok"
                    for r in s.sentinel_slaves(self.SERVICE)) == len(self.replicas)
            for s in self.sentinel_clients()
        ), 30, "the sentinels did not see each other and the replicas")
        return self

    def sentinel_clients(self):
        import redis

        return [redis.Redis(port=port, socket_timeout=1) for port in self.sentinel_ports]

    def primary_port(self) -> int | None:
        """The port every sentinel now names as the primary's, None while they disagree."""
        import redis

        ports = set()
        for client in self.sentinel_clients():
            try:
                ports.add(int(client.sentinel_get_master_addr_by_name(self.SERVICE)[1]))
            except (redis.RedisError, TypeError):
                return None
        return ports.pop() if len(ports) == 1 else None

    def server_on(self, port: int) -> RedisServer:
        return next(s for s in [self.primary, *self.replicas] if s.port == port)

    @staticmethod
    def wait(condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if condition():
                    return
            except Exception:  # a service still starting
                pass
            time.sleep(0.1)
        raise AssertionError(f"{what} within {timeout} s")

    def stop(self) -> None:
        for proc in self.sentinels:
            proc.kill()
            proc.wait()
        for server in [self.primary, *self.replicas]:
            server.kill()


class ChatServer:
    """``python -m chatroom`` in a subprocess, in one broker mode, on a real socket."""

    def __init__(self, mode: str, data_dir: Path, redis_url: str | None = None,
                 env: dict[str, str | None] | None = None, args: list[str] | None = None) -> None:
        self.mode = mode
        self.data_dir = data_dir
        self.redis_url = redis_url
        self.env = {"CHATROOM_RATE_LIMIT": "off", **(env or {})}
        self.args = args or []
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    def command(self) -> list[str]:
        broker = ["--memory"] if self.mode == "memory" else ["--redis", self.redis_url]
        return [sys.executable, "-m", "chatroom", "--host", "127.0.0.1", "--port",
                str(self.port), "--no-browser", "--data-dir", str(self.data_dir),
                *broker, *self.args]

    def start(self) -> ChatServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
        env.update({k: v for k, v in self.env.items() if v is not None})
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - kept open while it runs
        self.proc = subprocess.Popen(self.command(), env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chatroom exited: {self.log_path.read_text()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        raise RuntimeError(f"chatroom did not start: {self.log_path.read_text()}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10) -> float:
        """Stop the server with ``sig``; return how long it took to exit."""
        if self.proc is None:
            return 0.0
        began = time.monotonic()
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"chatroom did not stop within {timeout} s") from None
        finally:
            self.proc = None
            self.log.close()
        return time.monotonic() - began

    def restart(self, sig: int = signal.SIGTERM) -> None:
        self.stop(sig)
        self.start()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def health(self) -> dict[str, Any]:
        return requests.get(self.url + "/healthz", timeout=5).json()

    def visitor(self, name: str | None = None, source: str | None = None) -> Visitor:
        visitor = Visitor(self, source)
        if name is not None:
            visitor.login(name)
        return visitor

    def stream(self, query: str = "", **kwargs: Any) -> SSEStream:
        return SSEStream(f"{self.url}/stream{'?' + query if query else ''}", **kwargs)


class _FromAddress(requests.adapters.HTTPAdapter):
    """Connects from a chosen local address: 127.0.0.2 stands in for another machine."""

    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


class Visitor:
    """Someone using the chat over HTTP, with their own session cookie.

    ``source`` is the local address their connections come from (another machine).
    """

    def __init__(self, server: ChatServer, source: str | None = None) -> None:
        self.server = server
        self.source = source
        self.http = requests.Session()
        if source is not None:
            self.http.mount("http://", _FromAddress(source))
        self.name: str | None = None

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, self.server.url + path, **kwargs)

    def login(self, name: str) -> requests.Response:
        answer = self.request("POST", "/login", json={"username": name})
        if answer.status_code == 200:
            self.name = answer.json()["username"]
        return answer

    def post(self, text: str, room: str = "general") -> requests.Response:
        return self.request("POST", f"/api/rooms/{room}/messages", json={"text": text})

    def say(self, text: str, room: str = "general") -> dict:
        answer = self.post(text, room)
        assert answer.status_code == 201, answer.text
        return answer.json()

    def settle(self, *streams: SSEStream, room: str = "general") -> dict:
        """Post a marker and read each stream up to it.

        Events reach a stream in id order, so whatever was sent before the marker has then
        arrived: a test that something did not come needs no fixed wait.
        """
        marker = self.say("(marker)", room)
        for stream in streams:
            stream.wait_for(lambda fs: any(
                f.event == "message" and f.json()["id"] == marker["id"] for f in fs))
        return marker

    def history(self, room: str = "general", **params: Any) -> list[dict]:
        answer = self.request("GET", f"/api/rooms/{room}/messages", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()["messages"]

    def create_room(self, name: str) -> requests.Response:
        return self.request("POST", "/api/rooms", json={"name": name})

    def cookie(self) -> str:
        return "; ".join(f"{c.name}={c.value}" for c in self.http.cookies)

    def stream(self, query: str = "", **kwargs: Any) -> SSEStream:
        return self.server.stream(query, cookie=self.cookie(), source=self.source, **kwargs)
