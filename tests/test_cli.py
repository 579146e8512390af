"""The command line: --help, --version, ports, and the three ways to start the same app."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

import chatroom

from services import free_port, wait_for_port


def run(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "chatroom", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_explains_every_option() -> None:
    done = run("--help")
    assert done.returncode == 0
    for option in ["--host", "--port", "--redis", "--memory", "--workers", "--data-dir",
                   "--no-browser", "--private", "--version"]:
        assert option in done.stdout
    for variable in ["CHATROOM_PORT", "CHATROOM_REDIS_URL", "CHATROOM_DATA_DIR",
                     "CHATROOM_SECRET_KEY", "CHATROOM_KEEPALIVE", "CHATROOM_RATE_LIMIT"]:
        assert variable in done.stdout


def test_version() -> None:
    done = run("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"chatroom {chatroom.__version__}"


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "chatroom"
    assert script.exists(), "pip install . provides the chatroom command"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == f"chatroom {chatroom.__version__}"


def test_bad_settings_are_one_line_errors(tmp_path: Path) -> None:
    done = run("--port", "99999", "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert "CHATROOM_PORT" in done.stderr or "port" in done.stderr.lower()
    assert "Traceback" not in done.stderr
    env_done = subprocess.run(
        [sys.executable, "-m", "chatroom", "--data-dir", str(tmp_path)], capture_output=True,
        text=True, timeout=30, env={**os.environ, "CHATROOM_RATE_LIMIT": "fast"},
    )
    assert env_done.returncode == 2
    assert "CHATROOM_RATE_LIMIT" in env_done.stderr


def test_an_explicit_port_that_is_taken_is_an_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run("--host", "127.0.0.1", "--port", str(port), "--memory", "--no-browser",
                   "--data-dir", str(tmp_path))
    assert done.returncode == 2
    assert f"Port {port} is in use" in done.stderr


def _serve(args: list[str], env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")},
             **(env or {})},
    )
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        found = re.search(r"On this computer:\s+(http://\S+)", line)
        if found:
            return proc, found.group(1)
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("".join(lines))


def _hold(sock: socket.socket, port: int) -> None:
    # Another test's chat may have the port for a moment (a default start moves on, and
    # may let it go at any time): this test needs to be the one that holds it.
    deadline = time.monotonic() + 30
    while True:
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.mark.xdist_group("default-port")  # with the other chats on the default port
def test_the_default_port_moves_to_the_next_free_one(tmp_path: Path) -> None:
    with socket.socket() as busy:
        _hold(busy, 5000)
        proc, url = _serve([sys.executable, "-m", "chatroom", "--host", "127.0.0.1",
                            "--memory", "--no-browser", "--data-dir", str(tmp_path)])
        try:
            assert not url.endswith(":5000/")
            assert requests.get(url + "healthz", timeout=5).status_code == 200
        finally:
            proc.terminate()
            proc.wait(10)
    assert proc.returncode == 0


@pytest.mark.parametrize("how", ["python -m", "gunicorn"])
def test_every_entry_point_serves_the_same_app(how: str, tmp_path: Path) -> None:
    port = free_port()
    env = {"CHATROOM_DATA_DIR": str(tmp_path), "CHATROOM_MEMORY": "1",
           "CHATROOM_NO_BROWSER": "1"}
    if how == "gunicorn":
        args = [sys.executable, "-m", "gunicorn", "-k", "gevent", "-b", f"127.0.0.1:{port}",
                "chatroom:create_app()"]
    else:
        args = [sys.executable, "-m", "chatroom", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **env})
    try:
        wait_for_port(port, timeout=20)
        base = f"http://127.0.0.1:{port}"
        assert requests.get(base + "/healthz", timeout=5).json()["broker"] == "memory"
        visitor = requests.Session()
        assert visitor.post(base + "/login", json={"username": "e"}, timeout=5).ok
        sent = visitor.post(base + "/api/rooms/general/messages", json={"text": "hi"}, timeout=5)
        assert sent.status_code == 201
        assert "<form" in requests.get(base + "/", timeout=5).text
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_start_up_text_gives_addresses_and_a_qr_code() -> None:
    from chatroom.config import Config
    from chatroom.startup import Ready, start_up_text

    text = start_up_text(
        Ready("http://localhost:5000/", ["http://192.168.1.20:5000/"], "the in-process broker", 1),
        Config(data_dir=Path("/data")),
    )
    assert "On this computer:  http://localhost:5000/" in text
    assert "On the network:    http://192.168.1.20:5000/" in text
    assert "█" in text  # the QR code
    alone = start_up_text(Ready("http://localhost:5000/", [], "x", 1), Config())
    assert "only this computer can join" in alone


def test_the_browser_does_not_inherit_the_bundles_library_path(monkeypatch) -> None:
    from chatroom import startup

    assert startup._browser_environment() is None  # not frozen: nothing to undo
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setenv("LD_LIBRARY_PATH", "/tmp/_MEI1234")
    monkeypatch.setenv("LD_LIBRARY_PATH_ORIG", "/usr/local/lib")
    assert startup._browser_environment()["LD_LIBRARY_PATH"] == "/usr/local/lib"
    monkeypatch.delenv("LD_LIBRARY_PATH_ORIG")
    assert "LD_LIBRARY_PATH" not in startup._browser_environment()


def test_with_no_network_at_all_it_runs_for_this_computer(tmp_path: Path) -> None:
    # A network namespace with only loopback: no Wi-Fi, no cable, no address to share.
    script = f"""
import re, subprocess, sys, time, urllib.request
proc = subprocess.Popen([{sys.executable!r}, "-m", "chatroom", "--memory", "--no-browser",
                         "--data-dir", {str(tmp_path)!r}], stdout=subprocess.PIPE, text=True)
text = ""
while "Press Ctrl+C" not in text:
    text += proc.stdout.readline()
url = re.search(r"On this computer:\\s+(\\S+)", text).group(1)
print(text)
print(urllib.request.urlopen(url + "healthz", timeout=5).read().decode())
proc.terminate()
proc.wait(10)
"""
    (tmp_path / "inside.py").write_text(script)
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c",
         f"ip link set lo up && {sys.executable} {tmp_path / 'inside.py'}"],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parent.parent,
    )
    assert done.returncode == 0, done.stderr
    assert "No network found: only this computer can join." in done.stdout
    assert "On the network" not in done.stdout
    assert '"status":"ok"' in done.stdout
