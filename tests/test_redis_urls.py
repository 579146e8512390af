"""Where Redis is: Sentinel URLs, TLS (rediss://), and clear errors for bad ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import trustme

from chatroom.broker import BrokerUnavailable, open_broker
from chatroom.broker.redis_link import SentinelUrl, parse_sentinel_url
from chatroom.config import Config

from services import RedisServer, free_port, wait_for_port


@pytest.mark.parametrize(("url", "parsed"), [
    ("redis+sentinel://10.0.0.1:26379,10.0.0.2:26380/chat",
     SentinelUrl((("10.0.0.1", 26379), ("10.0.0.2", 26380)), "chat")),
    ("redis+sentinel://s1,s2/chat/3",
     SentinelUrl((("s1", 26379), ("s2", 26379)), "chat", db=3)),
    ("redis+sentinel://:se%40cret@[::1]:5000/my%20service",
     SentinelUrl((("::1", 5000),), "my service", password="se@cret")),
    ("rediss+sentinel://ops:pw@h:1/chat?sentinel_password=other",
     SentinelUrl((("h", 1),), "chat", username="ops", password="pw",
                 sentinel_password="other", ssl=True)),
])
def test_sentinel_urls_are_read(url: str, parsed: SentinelUrl) -> None:
    assert parse_sentinel_url(url) == parsed


@pytest.mark.parametrize(("url", "says"), [
    ("redis+sentinel://h:1", "/<service>"),
    ("redis+sentinel://h:1/chat/zero", "database must be a number"),
    ("redis+sentinel:///chat", "at least one sentinel"),
    ("redis+sentinel://h:99999/chat", "not a port"),
    ("redis+sentinel://h:1/a/0/extra", "/<service>"),
])
def test_a_bad_sentinel_url_says_what_is_wrong(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(BrokerUnavailable) as caught:
        open_broker(Config(data_dir=tmp_path, redis_url=url))
    assert says in str(caught.value)


def test_unreachable_sentinels_are_one_clear_line_and_hide_the_password(tmp_path) -> None:
    url = f"redis+sentinel://:hunter2@127.0.0.1:{free_port()},127.0.0.1:{free_port()}/chat"
    done = subprocess.run(
        [sys.executable, "-m", "chatroom", "--redis", url, "--no-browser",
         "--data-dir", str(tmp_path), "--port", str(free_port())],
        capture_output=True, text=True, timeout=30,
    )
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chatroom: Cannot use Redis at")
    assert "hunter2" not in done.stderr and "***" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


@pytest.fixture
def tls_redis(tmp_path: Path):
    """A redis-server that speaks only TLS, with a certificate from a test CA."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    server = RedisServer(tmp_path)
    proc = subprocess.Popen(
        [server.binary, "--port", "0", "--tls-port", str(server.port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(paths["cert"]), "--tls-key-file", str(paths["key"]),
         "--tls-ca-cert-file", str(paths["ca"]), "--tls-auth-clients", "no",
         "--save", "", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    wait_for_port(server.port)
    yield f"rediss://127.0.0.1:{server.port}/0?ssl_ca_certs={paths['ca']}"
    proc.kill()
    proc.wait()


def test_rediss_serves_the_chat_over_tls(start_server, tls_redis: str) -> None:
    server = start_server("redis", redis=SimpleNamespace(url=tls_redis))
    assert server.health()["status"] == "ok"
    message = server.visitor("ana").say("over TLS")
    with server.stream(last_event_id=0) as stream:
        assert stream.wait_messages(1)[0]["id"] == message["id"]
