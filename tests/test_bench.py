"""The project's benchmark runs and prints its figures (no figure is asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_benchmark_runs_in_both_modes() -> None:
    for mode in ("memory", "redis"):
        done = subprocess.run(
            [sys.executable, "scripts/bench.py", "--listeners", "20", "--mode", mode,
             "--rate", "5", "--duration", "1"],
            capture_output=True, text=True, timeout=120, cwd=ROOT,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert "deliveries" in done.stdout


def test_the_capacity_plot_is_drawn(tmp_path: Path) -> None:
    out = tmp_path / "capacity.png"
    done = subprocess.run(
        [sys.executable, "scripts/bench_plot.py", "--modes", "memory", "--listeners", "10,20",
         "--rate", "5", "--duration", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "[4/4," in done.stdout  # progress, run by run
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    figures = json.loads(out.with_suffix(".json").read_text())
    assert [p["listeners"] for p in figures["memory"]] == [10, 20]
    again = tmp_path / "again.png"
    redrawn = subprocess.run(
        [sys.executable, "scripts/bench_plot.py", "--from", str(out.with_suffix(".json")),
         "--out", str(again)], capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert redrawn.returncode == 0, redrawn.stderr[-2000:]
    assert again.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
