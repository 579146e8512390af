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
