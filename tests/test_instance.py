"""One chat per data folder: a second start says where the first one is."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from services import ChatServer

# Chats on the default port (5000, or the next free one): one at a time in the suite.
pytestmark = pytest.mark.xdist_group("default-port")


def _start(data_dir: Path, *args: str) -> subprocess.Popen:
    """``chatroom`` as a second double-click starts it: no --port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
    env.pop("DISPLAY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "chatroom", "--memory", "--host", "127.0.0.1",
         "--data-dir", str(data_dir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
    )


def _until_running(proc: subprocess.Popen, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    seen = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen += line
        if "On this computer:" in line:
            return line.split("On this computer:", 1)[1].strip()
        if not line and proc.poll() is not None:
            break
    raise AssertionError(f"it never said where it runs:\n{seen}")


def _stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)


def test_a_second_start_finds_the_first(start_server) -> None:
    first = start_server("memory")
    second = _start(first.data_dir)
    out, _ = second.communicate(timeout=30)
    assert second.returncode == 0, out
    assert f"chatroom is already running at http://localhost:{first.port}/" in out
    # No browser here, and it says so rather than nothing.
    assert "open this address in a browser" in out
    assert requests.get(first.url + "/healthz", timeout=5).status_code == 200


def test_no_browser_means_no_line_about_one(start_server) -> None:
    first = start_server("memory")
    out, _ = _start(first.data_dir, "--no-browser").communicate(timeout=30)
    assert "already running" in out and "browser" not in out


def test_a_killed_chat_leaves_no_lock_behind(tmp_path: Path) -> None:
    first = ChatServer("memory", tmp_path / "data")
    first.start()
    first.stop(signal.SIGKILL)
    again = _start(tmp_path / "data", "--no-browser")
    try:
        url = _until_running(again)
        assert requests.get(url + "healthz", timeout=5).status_code == 200
    finally:
        _stop(again)


def test_two_data_folders_are_two_chats(start_server, tmp_path: Path) -> None:
    first = start_server("memory")
    other = _start(tmp_path / "other", "--no-browser")
    try:
        url = _until_running(other)
        assert url != f"http://localhost:{first.port}/"
        assert requests.get(url + "healthz", timeout=5).status_code == 200
    finally:
        _stop(other)


def test_an_explicit_port_is_a_chat_of_its_own(start_server) -> None:
    first = start_server("memory")
    from services import free_port

    port = free_port()
    other = _start(first.data_dir, "--no-browser", "--port", str(port))
    try:
        assert _until_running(other) == f"http://localhost:{port}/"
    finally:
        _stop(other)
