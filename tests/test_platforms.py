"""What differs between Linux, Windows and macOS, tested here as far as it can be.

The release workflow (.github/workflows/release.yml) runs these and the executable's
tests on each of the three systems.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import platformdirs.macos
import platformdirs.unix
import pytest

# Chats on the default port (5000, or the next free one): one at a time in the suite.
pytestmark = pytest.mark.xdist_group("default-port")

ROOT = Path(__file__).resolve().parent.parent


def _double_click(stdin) -> subprocess.Popen:
    """``chatroom`` with no arguments (as a double-click starts it) and a bad setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATROOM_")}
    env["CHATROOM_PORT"] = "not-a-port"
    return subprocess.Popen([sys.executable, "-m", "chatroom"], stdin=stdin,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.skipif(os.name == "nt", reason="a pseudo-terminal is a POSIX thing")
def test_a_fatal_error_keeps_a_real_console_open_until_enter() -> None:
    import pty

    controller, console = pty.openpty()
    proc = _double_click(console)
    os.close(console)
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(2)  # waiting for Enter, the sentence still on screen
        os.write(controller, b"\n")
        out, err = proc.communicate(timeout=10)
    finally:
        os.close(controller)
    assert proc.returncode == 2
    assert "CHATROOM_PORT must be a whole number" in err
    assert "Press Enter" in out + err


def test_no_window_waits_when_nobody_can_press_enter() -> None:
    out, err = _double_click(subprocess.DEVNULL).communicate(timeout=20)
    assert "CHATROOM_PORT must be a whole number" in err
    assert "Press Enter" not in out + err


def test_data_folders_follow_each_systems_rules() -> None:
    assert platformdirs.macos.MacOS("chatroom").user_data_dir.endswith(
        "Library/Application Support/chatroom"
    )
    assert platformdirs.unix.Unix("chatroom").user_data_dir.endswith(".local/share/chatroom")


def test_the_release_workflow_is_valid() -> None:
    # Against GitHub's published schema, which check-jsonschema carries (works offline).
    workflows = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
    assert workflows
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema",
         "vendor.github-workflows", *map(str, workflows)],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
