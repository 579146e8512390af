"""The data folder: private to its owner, and its failures said in one sentence."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from services import ChatServer, free_port


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_folder_is_readable_by_its_owner_only(start_server, unique) -> None:
    server = start_server("memory")
    server.visitor(unique("fm")).say("private things")
    folder = server.data_dir
    assert _mode(folder) == 0o700
    for name in ["chatroom.sqlite3", "chatroom.sqlite3-wal", "secret_key"]:
        assert _mode(folder / name) == 0o600, name


def test_an_existing_open_folder_and_database_are_closed(tmp_path: Path, start_server) -> None:
    server = start_server("memory")
    server.stop()
    os.chmod(server.data_dir, 0o755)
    os.chmod(server.data_dir / "chatroom.sqlite3", 0o644)
    server.start()
    assert _mode(server.data_dir) == 0o700
    assert _mode(server.data_dir / "chatroom.sqlite3") == 0o600


def _start_fails(data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
    return subprocess.run(
        [sys.executable, "-m", "chatroom", "--memory", "--host", "127.0.0.1", "--port",
         str(free_port()), "--no-browser", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=30, env=env,
    )


def _one_sentence(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    line = result.stderr.strip()
    assert line.startswith("chatroom: ") and "\n" not in line, line
    for word in words:
        assert word in line, line


def test_a_corrupt_database_is_one_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "chatroom.sqlite3").write_bytes(b"this is not a database" * 100)
    _one_sentence(_start_fails(folder), str(folder / "chatroom.sqlite3"), "Move it")


def test_an_empty_secret_is_one_sentence(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "secret_key").write_text("\n")
    _one_sentence(_start_fails(folder), str(folder / "secret_key"), "empty")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 3 MB tmpfs: a disk that can be filled, then freed again."""
    assert os.geteuid() == 0, "mounting a small tmpfs needs root (CI runs as root)"
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_read_only_data_folder_is_one_sentence(small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    _one_sentence(_start_fails(small_disk / "data"), str(small_disk / "data"))
    _one_sentence(_start_fails(small_disk), str(small_disk))


def test_a_full_disk_is_a_503_and_nothing_answered_201_is_lost(
    small_disk: Path, start_server, unique
) -> None:
    server = ChatServer("memory", small_disk / "data")
    server.start()
    try:
        visitor = server.visitor(unique("fd"))
        filler = small_disk / "filler"
        with open(filler, "wb") as out:
            try:
                while True:
                    out.write(b"x" * 65536)
                    out.flush()
            except OSError:
                pass
        stored, answer = [], None
        for i in range(2000):
            answer = visitor.post(f"{i} " + "y" * 1900)
            if answer.status_code != 201:
                break
            stored.append(answer.json())
        assert answer is not None and answer.status_code == 503, "the disk never filled"
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json()["code"] == "storage_unavailable"
        assert "history file" in answer.json()["error"]
        health = requests.get(server.url + "/healthz", timeout=5)
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        filler.unlink()
        deadline = time.monotonic() + 10
        while (again := visitor.post("room again")).status_code != 201:
            assert time.monotonic() < deadline, again.text
            time.sleep(0.1)
        stored.append(again.json())
        assert requests.get(server.url + "/healthz", timeout=5).status_code == 200
        server.restart()
        kept = visitor.history(limit=1000)
        assert [m["id"] for m in kept if m["id"] >= stored[0]["id"]] == [m["id"] for m in stored]
    finally:
        server.stop()
        shutil.rmtree(small_disk / "data", ignore_errors=True)
    assert "Traceback" not in server.output()
