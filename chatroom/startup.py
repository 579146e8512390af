"""What a person sees when the chat starts: where it is, a QR code for phones, a browser."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import webbrowser
from dataclasses import dataclass

from . import __version__
from .config import Config
from .i18n import _
from .network import addresses


@dataclass(frozen=True)
class Ready:
    """What the start-up text tells: where the chat is and what serves it."""

    local: str
    lan: list[str]
    broker: str
    workers: int
    # How many listeners the open-files limit lets it hold (None: no such limit).
    capacity: int | None = None


def ready_text(
    config: Config, sock: socket.socket, broker: str, workers: int, capacity: int | None
) -> Ready:
    """Gather what the start-up text tells about a chat listening on ``sock``."""
    local, lan = addresses(config.host, sock.getsockname()[1])
    return Ready(local, lan, broker, workers, None if capacity is None else capacity * workers)


# What open_browser says when there was no browser to open.
NO_BROWSER = ""


def browser_line(opened: str) -> str:
    """Say whether a browser opened (``opened`` names it) or the person must open one."""
    if opened == NO_BROWSER:
        return "  " + _("(No browser could be opened here: open this address in a browser.)")
    return "  " + _("(Opening it in your browser: {browser}.)").format(browser=opened)


def start_up_text(where: Ready, config: Config, opened: str | None = None) -> str:
    """Say in plain words where the chat is, with a QR code of the network address.

    ``opened`` is what :func:`open_browser` returned, or None if none was asked for.
    The text is in the console's language; a console that cannot draw the QR code's
    block characters gets a sentence instead.
    """
    if where.workers > 1:
        first = _("chatroom {version} is running with {workers} workers, using {broker}.")
    else:
        first = _("chatroom {version} is running, using {broker}.")
    lines = [first.format(version=__version__, workers=where.workers, broker=where.broker), ""]
    lines.append("  " + _("On this computer:") + f"  {where.local}")
    if opened is not None:
        lines.append(browser_line(opened))
    lines += ["  " + _("On the network:") + f"    {url}" for url in where.lan]
    if where.lan:
        qr = _qr(where.lan[0])
        if qr is None:
            lines += ["", _("Others on the same network open that address (this console cannot"
                            " show the QR code).")]
        else:
            lines += ["", _("Others on the same network open that address, or scan this code:"),
                      "", qr]
    elif config.host in ("0.0.0.0", "::"):
        lines.append("  " + _("(No network found: only this computer can join.)"))
    if where.capacity is not None:
        lines += ["", _("It can hold about {count} listeners at once (the system's open-files"
                        " limit).").format(count=f"{where.capacity:,}")]
    lines += ["", _("Your host link (it gives the host's powers: keep it to yourself):"),
              f"  {host_link(where, config)}"]
    lines += ["", _("History and settings are kept in {folder}").format(folder=config.data_dir)]
    lines += [_("Press Ctrl+C (or close this window) to stop."), ""]
    return "\n".join(lines)


def host_link(where: Ready, config: Config) -> str:
    """Return the link that makes a browser on this computer the host's."""
    return f"{where.local}host?token={config.host_token}"


def _qr(url: str) -> str | None:
    import segno

    out = io.StringIO()
    segno.make(url, error="l").terminal(out, compact=True, border=2)
    drawn = out.getvalue().rstrip("\n")
    try:
        drawn.encode(getattr(sys.stdout, "encoding", None) or "ascii")
    except (UnicodeEncodeError, LookupError):
        return None  # an ASCII or GBK console has no half-block characters
    return drawn


def open_browser(url: str) -> str:
    """Open the chat in the default browser, if this computer has a screen and a browser.

    Return the browser's name, or :data:`NO_BROWSER`.
    """
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return NO_BROWSER
    frozen_linux = _browser_environment() is not None and sys.platform.startswith("linux")
    if frozen_linux and shutil.which("xdg-open"):
        name = "your default browser (xdg-open)"
    else:
        try:
            found = webbrowser.get()
        except webbrowser.Error:
            return NO_BROWSER
        name = getattr(found, "name", "") or type(found).__name__
    # webbrowser may block while a browser starts: keep it off the server's loop.
    threading.Thread(target=_open, args=(url,), daemon=True).start()
    return name


def _open(url: str) -> None:
    env = _browser_environment()
    if env is not None and sys.platform.startswith("linux"):
        try:
            subprocess.Popen(["xdg-open", url], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
            return
        except OSError:
            pass
    webbrowser.open(url)


def _browser_environment() -> dict[str, str] | None:
    """Return the environment without the single-file bundle's library path, if it set one.

    The bundle points LD_LIBRARY_PATH at its own libraries; a browser started with it may
    load them instead of its own and crash. PyInstaller keeps the original value aside.
    """
    if not getattr(sys, "frozen", False):
        return None
    env = dict(os.environ)
    for name in ("LD_LIBRARY_PATH", "DYLD_LIBRARY_PATH"):
        original = env.pop(f"{name}_ORIG", None)
        if original is not None:
            env[name] = original
        else:
            env.pop(name, None)
    return env
