"""Several processes on one port: a supervisor forks workers, replaces one that dies,
and stops them all on a signal (``--workers N``, which needs Redis)."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace

import gevent
import gevent.event

from .broker import BrokerUnavailable, open_broker
from .config import Config
from .i18n import _
from .server import STOP_TIMEOUT, StartError, bind, create_app_on, prepare, serve
from .startup import Ready, ready_text

log = logging.getLogger(__name__)

# A worker that dies more often than this within the window is not restarted again.
_RESTART_LIMIT = 5
_RESTART_WINDOW = 30.0


def run(
    config: Config, port_explicit: bool = False, on_ready: Callable[[Ready], None] = print
) -> int:
    """Fork ``config.workers`` processes that share one listening socket and one Redis."""
    capacity = prepare()
    if config.memory:
        raise StartError(_(
            "--workers needs Redis: the in-process broker serves one process. "
            "Add --redis URL, or leave out --workers."
        ))
    config = replace(config, redis_url=config.redis_url or config.default_redis_url)
    try:
        probe = open_broker(config)
    except BrokerUnavailable as exc:
        raise StartError(_("--workers needs Redis.") + f" {exc}") from None
    broker = probe.describe()
    probe.close()

    sock = bind(config.host, config.port, port_explicit)
    # Must be set before any worker imports prometheus_client: each then writes its
    # figures to files there, and /metrics on any worker sums them.
    metrics_dir = tempfile.mkdtemp(prefix="chatroom-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    supervisor = _Supervisor(sock, config)
    try:
        for _worker in range(config.workers):
            supervisor.spawn()
        on_ready(ready_text(config, sock, broker, config.workers, capacity))
        return supervisor.watch()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


class _Supervisor:
    """Starts worker processes, replaces one that dies, and stops them all on a signal."""

    def __init__(self, sock: socket.socket, config: Config) -> None:
        self._sock = sock
        self._config = config
        self._workers: set[int] = set()
        self._stopping = gevent.event.Event()

    def spawn(self) -> None:
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                app = create_app_on(self._config, self._sock)
                serve(self._sock, app, self._config, parent=parent)
            except StartError as exc:
                print(f"chatroom: {exc}", file=sys.stderr, flush=True)
                code = 2
            except BaseException:
                log.exception("worker %s failed", os.getpid())
                code = 1
            finally:
                os._exit(code)
        self._workers.add(pid)

    def watch(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(signum, self._stopping.set)
        restarts: list[float] = []
        while not self._stopping.wait(0.2):
            for pid in list(self._workers):
                done, status = os.waitpid(pid, os.WNOHANG)
                if not done:
                    continue
                self._workers.discard(pid)
                _mark_dead(pid)
                now = time.monotonic()
                restarts = [t for t in restarts if now - t < _RESTART_WINDOW] + [now]
                if (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 2) or (
                    len(restarts) > _RESTART_LIMIT
                ):
                    # It cannot start, or keeps dying: restarting would loop forever.
                    log.error("chatroom: workers keep failing; stopping.")
                    self._stop_all()
                    return 1
                log.warning("worker %s exited (status %s); starting another", pid, status)
                self.spawn()
        log.info(_("Stopping…"))
        self._stop_all()
        log.info(_("Stopped."))
        return 0

    def _stop_all(self) -> None:
        for pid in self._workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT + 1.5
        while self._workers and time.monotonic() < deadline:
            for pid in list(self._workers):
                if os.waitpid(pid, os.WNOHANG)[0]:
                    self._workers.discard(pid)
            gevent.sleep(0.05)
        for pid in self._workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        self._workers.clear()


def _mark_dead(pid: int) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid)
