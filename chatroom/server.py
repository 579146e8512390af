"""The gevent server: the listening socket, start-up text, signals and a graceful stop."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import socket
import sys
import threading
import webbrowser

import gevent
from gevent.pywsgi import WSGIServer

from . import __version__
from .broker import BrokerUnavailable
from .config import Config

log = logging.getLogger(__name__)

# How far past the default port to look for a free one.
_PORT_TRIES = 20
# A stop ends streams at once; requests still running get this long.
_STOP_TIMEOUT = 3.0


class ChatServer(WSGIServer):
    """pywsgi with Nagle's algorithm off on every connection.

    pywsgi writes a response's headers and body in separate sends; with Nagle on, the
    body then waits for the client's delayed ACK (40 ms on Linux) on every request, and
    small SSE frames would wait the same way.
    """

    def handle(self, sock: socket.socket, address: tuple) -> None:
        # A Unix socket has no Nagle to turn off.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle(sock, address)


class StartError(RuntimeError):
    """The server cannot start; the message is one sentence that says why and what to do."""


def bind(host: str, port: int, explicit: bool) -> socket.socket:
    """Return a listening socket; only a default port moves on to the next free one."""
    last = port if explicit or port == 0 else port + _PORT_TRIES
    for candidate in range(port, last + 1):
        try:
            return _listen(host, candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise StartError(f"Cannot listen on {host}:{candidate}: {exc.strerror}.") from None
            if candidate == last:
                break
            print(f"Port {candidate} is in use, trying {candidate + 1}.", flush=True)
    if explicit:
        raise StartError(
            f"Port {port} is in use by another program. Stop it, or choose another with --port."
        )
    raise StartError(f"Ports {port} to {last} are all in use. Choose one with --port.")


def _listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    if os.name != "nt":
        # Lets a restart reuse the port at once; on Windows the same flag would let two
        # servers share a port, so there it is left off.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(1024)
    except OSError:
        sock.close()
        raise
    return sock


def lan_addresses() -> list[str]:
    """Return this computer's IPv4 addresses other than loopback, best guess first."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # connect() on UDP sends nothing: it only asks the OS which address routes out.
        probe.connect(("10.254.254.254", 1))
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    return [a for a in dict.fromkeys(found) if not a.startswith("127.") and a != "0.0.0.0"]


def addresses(host: str, port: int) -> tuple[str, list[str]]:
    """Return the address for this computer and those for others on the network."""
    local = f"http://{'localhost' if host in ('0.0.0.0', '::', '127.0.0.1') else host}:{port}/"
    if host not in ("0.0.0.0", "::"):
        return local, []
    return local, [f"http://{a}:{port}/" for a in lan_addresses()]


def run(config: Config, port_explicit: bool = False) -> int:
    """Serve the chat until SIGINT or SIGTERM; return the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # The banner below says which broker is used; the app's own log line would repeat it.
    logging.getLogger("chatroom.app").setLevel(logging.WARNING)
    from .app import create_app

    sock = bind(config.host, config.port, port_explicit)
    port = sock.getsockname()[1]
    try:
        app = create_app(config)
    except BrokerUnavailable as exc:
        sock.close()
        raise StartError(str(exc)) from None
    chat = app.extensions["chatroom"]
    server = ChatServer(sock, app, log=None)

    stopping = gevent.event.Event()

    def stop(*_: object) -> None:
        stopping.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, stop)

    server.start()
    local, lan = addresses(config.host, port)
    _print_banner(chat.broker.describe(), config, local, lan)
    if not config.no_browser:
        _open_browser(local)

    stopping.wait()
    print("Stopping…", flush=True)
    # Closing the hub ends every stream; only then can the server's stop finish quickly.
    chat.close()
    server.stop(timeout=_STOP_TIMEOUT)
    print("Stopped.", flush=True)
    return 0


def _print_banner(broker: str, config: Config, local: str, lan: list[str]) -> None:
    lines = [f"chatroom {__version__} is running, using {broker}.", ""]
    lines.append(f"  On this computer: {local}")
    lines += [f"  On the network:   {url}" for url in lan]
    if config.host in ("0.0.0.0", "::") and not lan:
        lines.append("  (No network found: only this computer can join.)")
    lines += ["", f"Data folder: {config.data_dir}", "Press Ctrl+C to stop.", ""]
    print("\n".join(lines), flush=True)


def _open_browser(url: str) -> None:
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return
    # webbrowser may block while it starts a browser: keep it off the server's loop.
    threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
