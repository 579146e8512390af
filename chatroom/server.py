"""The gevent server: the listening socket, start-up text, signals and a graceful stop."""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import gevent
import gevent.event
from gevent.pool import Pool

from . import instance
from .broker import BrokerUnavailable
from .config import Config, DataDirError
from .connections import ChatServer, raise_open_files_limit
from .i18n import _
from .startup import Ready, host_link, ready_text

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger(__name__)

# How far past the default port to look for a free one.
_PORT_TRIES = 20
# A stop ends streams at once; requests still running get this long.
STOP_TIMEOUT = 2.0
# More worker restarts than this within the window means something is wrong for good.


class StartError(RuntimeError):
    """The server cannot start; the message is one sentence that says why and what to do."""


class AlreadyRunning(Exception):
    """A chat with this data folder runs already: ``url`` is where, ``host_link`` its host's."""

    def __init__(self, url: str, host_link: str) -> None:
        super().__init__(url)
        self.url = url
        self.host_link = host_link


# How long a second start waits for a first one that is still starting to say where it is.
_FIRST_START_WAIT = 10.0


def bind(host: str, port: int, explicit: bool) -> socket.socket:
    """Return a listening socket; only a default port moves on to the next free one."""
    last = port if explicit or port == 0 else port + _PORT_TRIES
    for candidate in range(port, last + 1):
        try:
            return _listen(host, candidate)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise StartError(_("Cannot listen on {host}:{port}: {reason}.").format(
                    host=host, port=candidate, reason=exc.strerror
                )) from None
            if candidate == last:
                break
            print(_("Port {port} is in use, trying {next}.").format(
                port=candidate, next=candidate + 1
            ), flush=True)
    if explicit:
        raise StartError(_(
            "Port {port} is in use by another program. Stop it, or choose another with --port."
        ).format(port=port))
    raise StartError(
        _("Ports {port} to {last} are all in use. Choose one with --port.").format(
            port=port, last=last
        )
    )


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


def prepare() -> int | None:
    """Set up logging and the open-files limit of a serving process; return its capacity."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # The start-up text says which broker is used; the app's own log line would repeat it.
    logging.getLogger("chatroom.app").setLevel(logging.WARNING)
    return raise_open_files_limit()


def run(
    config: Config, port_explicit: bool = False, on_ready: Callable[[Ready], None] = print
) -> int:
    """Serve the chat until SIGINT or SIGTERM; return the exit code.

    ``on_ready`` is called once the chat answers, to tell the user where it is.
    """
    capacity = prepare()
    owner = _own_data_dir(config, port_explicit)
    try:
        sock = bind(config.host, config.port, port_explicit)
        app = create_app_on(config, sock)
        chat = app.extensions["chatroom"]
        describe = chat.broker.describe()
        ready = ready_text(config, sock, describe, 1, capacity)

        def started() -> None:
            if owner is not None:
                owner.record(ready.local, host_link(ready, config))
            on_ready(ready)

        serve(sock, app, config, ready=started)
    finally:
        if owner is not None:
            owner.release()
    return 0


def _own_data_dir(config: Config, port_explicit: bool) -> instance.Instance | None:
    """Hold the data folder for this chat; raise AlreadyRunning if another chat holds it.

    A start with an explicit port is a chat of its own, even on the same folder.
    """
    try:
        folder = config.prepare_data_dir()
    except DataDirError as exc:
        raise StartError(str(exc)) from None
    owner = instance.claim(folder)
    if owner is not None or port_explicit:
        return owner
    deadline = time.monotonic() + _FIRST_START_WAIT
    while (found := instance.running_at(folder)) is None and time.monotonic() < deadline:
        time.sleep(0.1)  # the first start is still on its way: it will say where it is
    if found is None:
        raise StartError(_(
            "Another chatroom is starting with the data folder {folder}. Wait for it, or"
            " choose another folder with --data-dir."
        ).format(folder=folder))
    raise AlreadyRunning(*found)


def create_app_on(config: Config, sock: socket.socket) -> Flask:
    from .app import create_app

    try:
        return create_app(config)
    except (BrokerUnavailable, DataDirError) as exc:
        sock.close()
        raise StartError(str(exc)) from None


def serve(
    sock: socket.socket,
    app: Flask,
    config: Config,
    parent: int | None = None,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serve on ``sock`` until SIGINT or SIGTERM (or, for a worker, its parent's end)."""
    chat = app.extensions["chatroom"]
    server = ChatServer(sock, app, log=None, spawn=Pool(), config=config)
    stopping = gevent.event.Event()
    on_stop_signals(stopping.set)
    if parent is not None:
        gevent.spawn(_stop_when_orphaned, parent, stopping)
    server.start()
    if ready is not None:
        ready()
    stopping.wait()
    if ready is not None:
        log.info(_("Stopping…"))
    # Stop taking connections, end every stream (browsers reconnect and resume from
    # Last-Event-ID), let requests under way finish, and only then close the broker, so
    # that every message answered 201 is stored.
    server.close()
    chat.fanout.close_all()
    server.stop(timeout=STOP_TIMEOUT)
    chat.close()
    if ready is not None:
        log.info(_("Stopped."))


def on_stop_signals(callback: Callable[[], None]) -> None:
    """Call ``callback`` on Ctrl+C, SIGTERM, or (Windows) Ctrl+Break and a closed console."""
    if os.name == "nt":
        # gevent's signal_handler does not exist on Windows: Python's own handlers run
        # on the main thread, which is the event loop's.
        for signum in (signal.SIGINT, signal.SIGBREAK):
            signal.signal(signum, lambda *_: callback())
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(signum, callback)


def _stop_when_orphaned(parent: int, stopping: gevent.event.Event) -> None:
    # A worker whose supervisor was killed outright must not serve on alone.
    while not stopping.is_set():
        if os.getppid() != parent:
            stopping.set()
        gevent.sleep(1.0)
