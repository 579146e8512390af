"""The single-file executable, built with PyInstaller and used as a double-click would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from sse_client import SSEStream

# Chats on the default port (5000, or the next free one): one at a time in the suite.
pytestmark = pytest.mark.xdist_group("default-port")

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def executable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pyinstaller")
    # A cache of its own: PyInstaller's shared one in the home folder is read and
    # rewritten without a lock, and a build beside this one could leave it half written.
    subprocess.run(
        [sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
         "--distpath", str(out / "dist"), "--workpath", str(out / "build"),
         str(ROOT / "build.spec")],
        cwd=ROOT, check=True, timeout=600,
        env={**os.environ, "PYINSTALLER_CONFIG_DIR": str(out / "cache")},
    )
    binary = out / "dist" / ("chatroom.exe" if os.name == "nt" else "chatroom")
    assert binary.exists()
    return binary


def _home_env(home: Path) -> dict[str, str]:
    """A fresh home folder, where each system keeps per-user data, and no display."""
    env = {"HOME": str(home), "PATH": os.environ["PATH"]}
    if os.name == "nt":
        env.update(USERPROFILE=str(home), APPDATA=str(home / "AppData" / "Roaming"),
                   LOCALAPPDATA=str(home / "AppData" / "Local"),
                   SYSTEMROOT=os.environ.get("SYSTEMROOT", r"C:\Windows"))
    return env


def _data_folder(home: Path) -> Path:
    """Where platformdirs puts chatroom's data folder under ``home`` on this system."""
    if sys.platform == "darwin":
        return home / "Library" / "Application Support" / "chatroom"
    if os.name == "nt":
        return home / "AppData" / "Local" / "chatroom" / "chatroom"
    return home / ".local" / "share" / "chatroom"


class Running:
    """The executable started with no arguments, as a double-click starts it."""

    def __init__(self, binary: Path, home: Path, env: dict[str, str] | None = None) -> None:
        self.env = {**_home_env(home), **(env or {})}
        # On Windows, Ctrl+C reaches a process of its own group only.
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if os.name == "nt" else 0
        self.proc = subprocess.Popen([str(binary)], stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env=self.env,
                                     creationflags=flags)
        self.lines: list[str] = []

    def address(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            self.lines.append(line)
            found = re.search(r"On this computer:\s+(http://\S+)", line)
            if found:
                return found.group(1).rstrip("/")
            if not line:
                break
        raise AssertionError("".join(self.lines))

    def stop(self) -> tuple[int, str]:
        # Ctrl+C, or closing the window.
        self.proc.send_signal(signal.CTRL_BREAK_EVENT if os.name == "nt" else signal.SIGINT)
        out, _ = self.proc.communicate(timeout=10)
        return self.proc.returncode, "".join(self.lines) + out


@pytest.fixture
def home(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "home"


def test_double_click_chat_and_history(executable: Path, home: Path) -> None:
    home.mkdir()
    app = Running(executable, home)
    base = app.address()
    session = requests.Session()
    assert session.post(base + "/login", json={"username": "teacher"}, timeout=5).ok
    with SSEStream(base + "/stream") as stream:
        stream.ready()
        sent = session.post(base + "/api/rooms/general/messages", json={"text": "hello class"},
                            timeout=5).json()
        assert stream.wait_messages(1) == [sent]
    assert "<form" in requests.get(base + "/", timeout=5).text
    assert requests.get(base + "/static/chat.js", timeout=5).ok  # assets are inside
    code, out = app.stop()
    assert code == 0, out
    assert "in-process broker" in out
    assert "Stopped." in out
    assert (_data_folder(home) / "chatroom.sqlite3").exists()

    again = Running(executable, home)
    base = again.address()
    history = requests.get(base + "/api/rooms/general/messages", timeout=5).json()["messages"]
    assert history == [sent]
    again.stop()


def test_a_fatal_error_is_one_sentence_and_never_waits(executable: Path, home: Path) -> None:
    home.mkdir()
    began = time.monotonic()
    done = subprocess.run([str(executable)], capture_output=True, text=True, timeout=30,
                          stdin=subprocess.DEVNULL,
                          env={**_home_env(home), "CHATROOM_PORT": "not-a-port"})
    assert done.returncode == 2
    assert time.monotonic() - began < 20
    assert done.stderr.strip() == (
        "chatroom: CHATROOM_PORT must be a whole number, not 'not-a-port'."
    )
    assert "Press Enter" not in done.stdout + done.stderr
