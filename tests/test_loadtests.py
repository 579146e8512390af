"""The Locust scenarios, run headless for a few seconds against a real server."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_every_scenario_delivers_with_no_gap_and_no_failure(start_server, mode, tmp_path):
    # A small client buffer, so that the slow reader is dropped and resumes in this time.
    server = start_server(mode, env={"CHATROOM_CLIENT_BUFFER": "20"})
    prefix = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests"), "--headless",
         "-u", "19", "-r", "19", "-t", "8s", "--host", server.url, "--only-summary",
         "--csv", str(prefix), "--loglevel", "WARNING"],
        capture_output=True, text=True, timeout=90, cwd=tmp_path,
        env={**os.environ, "CHATROOM_LOAD_POST_INTERVAL": "0.2"},
    )
    rows = {row["Name"]: row for row in _csv(f"{prefix}_stats.csv")}
    failures = _csv(f"{prefix}_failures.csv")
    assert failures == [], failures
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    posted = int(rows["/api/rooms/[room]/messages"]["Request Count"])
    delivered = int(rows["SSE deliver"]["Request Count"])
    assert posted > 20
    assert delivered > posted  # each message reaches many listeners
    assert float(rows["SSE deliver"]["50%"]) < 1000
    assert int(rows["/stream connect"]["Request Count"]) > 19  # the storm reconnected


def _csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _locust(*args: str, cwd: Path, server) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "locust", "-f", str(ROOT / "loadtests"), "--host", server.url,
         "--loglevel", "WARNING", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd,
        env={**os.environ, "CHATROOM_LOAD_POST_INTERVAL": "0.3"},
    )


def _check_run(prefix: Path) -> None:
    rows = {row["Name"]: row for row in _csv(f"{prefix}_stats.csv")}
    assert _csv(f"{prefix}_failures.csv") == []
    assert int(rows["Aggregated"]["Failure Count"]) == 0
    posted = int(rows["/api/rooms/[room]/messages"]["Request Count"])
    # The SSE deliver row adds up across processes: each post reaches many listeners.
    assert posted > 5 and int(rows["SSE deliver"]["Request Count"]) > posted
    assert int(rows["/login"]["Request Count"]) >= 12


def test_two_processes_make_distinct_names(start_server, tmp_path: Path) -> None:
    server = start_server("memory")
    prefix = tmp_path / "procs"
    run = _locust("--headless", "--processes", "2", "-u", "12", "-r", "12", "-t", "6s",
                  "--only-summary", "--csv", str(prefix), "Listener", "Poster",
                  cwd=tmp_path, server=server)
    _, err = run.communicate(timeout=90)
    assert run.returncode == 0, err[-3000:]
    _check_run(prefix)


def test_a_master_and_two_workers(start_server, tmp_path: Path) -> None:
    from services import free_port

    server = start_server("memory")
    prefix = tmp_path / "dist"
    port = str(free_port())
    master = _locust("--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", port,
                     "--expect-workers", "2", "--headless", "-u", "12", "-r", "12", "-t", "6s",
                     "--only-summary", "--csv", str(prefix), "Listener", "Poster",
                     cwd=tmp_path, server=server)
    workers = [_locust("--worker", "--master-host", "127.0.0.1", "--master-port", port,
                       "Listener", "Poster", cwd=tmp_path, server=server)
               for _ in range(2)]
    try:
        _, err = master.communicate(timeout=90)
        assert master.returncode == 0, err[-3000:]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    _check_run(prefix)
