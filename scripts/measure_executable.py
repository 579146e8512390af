"""Measure the single-file executable: its size, and the time from start to the first page.

    python scripts/measure_executable.py [--runs 7] [--executable dist/chatroom]

Builds dist/chatroom with `pyinstaller build.spec` unless --executable names one. Each run
starts it with no arguments in a fresh home folder, as a double-click would, and times
until GET / answers; the median of the runs is printed with the fastest and slowest.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build() -> Path:
    print("building dist/chatroom with PyInstaller…", flush=True)
    subprocess.run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
                    str(ROOT / "build.spec")], cwd=ROOT, check=True)
    return ROOT / "dist" / ("chatroom.exe" if os.name == "nt" else "chatroom")


def time_to_first_page(executable: Path) -> float:
    with tempfile.TemporaryDirectory() as home:
        env = {"HOME": home, "PATH": os.environ.get("PATH", ""), "CHATROOM_NO_BROWSER": "1"}
        began = time.monotonic()
        proc = subprocess.Popen([str(executable)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, env=env)
        try:
            url = None
            while url is None:
                line = proc.stdout.readline()
                if not line:
                    raise RuntimeError("the executable exited before saying where it listens")
                found = re.search(r"On this computer:\s+(\S+)", line)
                url = found.group(1) if found else None
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2).read()
                    return time.monotonic() - began
                except OSError:
                    time.sleep(0.005)
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--executable", type=Path)
    args = parser.parse_args()
    executable = args.executable or build()
    size = executable.stat().st_size
    times = []
    for run in range(args.runs):
        times.append(time_to_first_page(executable))
        print(f"  run {run + 1}: {times[-1] * 1000:.0f} ms", flush=True)
    print(f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"size: {size / 1_000_000:.1f} MB ({size} bytes)")
    print(f"start to first page: median {statistics.median(times) * 1000:.0f} ms "
          f"(fastest {min(times) * 1000:.0f}, slowest {max(times) * 1000:.0f}, {args.runs} runs)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
