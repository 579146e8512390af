"""The project's benchmark runs and prints its figures (no figure is asserted)."""

from __future__ import annotations

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
