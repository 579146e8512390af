"""The connections the gevent server accepts: its handler, the per-address limit, the
10-second wait for headers, and the JSON answers for requests the app never sees."""

from __future__ import annotations

import contextlib
import logging
import socket
from collections import Counter
from collections.abc import Callable
from typing import Any

from gevent.pywsgi import WSGIHandler, WSGIServer

from . import network
from .config import Config
from .errors import error_json, raw_response
from .request_headers import HeadersTooLarge, RequestHeaders

log = logging.getLogger(__name__)

# Bytes of read buffer per connection.
_READ_BUFFER = 1024
# A client gets this long to send a request's line and headers (a connection that sends
# nothing, or one byte a minute, would otherwise hold its slot for ever).
HEADER_TIMEOUT = 10.0
# Request headers past this many bytes in all are refused (431).
HEADERS_MAX = 16 * 1024
# Descriptors kept for the listening socket, storage, Redis and logs.
_RESERVED_FILES = 64


class Slots:
    """How many connections each client address holds, up to ``most`` (exempt: none)."""

    def __init__(self, most: int, exempt: Callable[[str], bool]) -> None:
        self._most = most
        self._exempt = exempt
        self._held: Counter[str] = Counter()

    def take(self, address: str) -> Connection | None:
        """Return a held slot for a new connection from ``address``; None if it has all."""
        if not self._exempt(address):
            if self._held[address] >= self._most:
                return None
            self._held[address] += 1
            return Connection(self, address)
        return Connection(None, address)

    def give_back(self, address: str) -> None:
        self._held[address] -= 1
        if self._held[address] <= 0:
            del self._held[address]


class Connection:
    """One accepted connection's slot: given back once, when the connection ends."""

    def __init__(self, slots: Slots | None, address: str) -> None:
        self._slots = slots
        self._address = address
        self.kept = False

    def keep(self) -> Callable[[], None]:
        """Keep the slot past the request (a stream handed over); return its release."""
        self.kept = True
        return self.release

    def release(self) -> None:
        if self._slots is not None:
            self._slots.give_back(self._address)
            self._slots = None


class ChatHandler(WSGIHandler):
    """pywsgi's handler, telling the app the client's socket (streams write to it directly)."""

    connection: Connection | None = None
    # The address the client reached this server at: the same for every request of a
    # connection, asked of the kernel once.
    _local_address: str | None = None

    def __init__(self, sock: socket.socket, address: tuple, server: WSGIServer) -> None:
        super().__init__(sock, address, server)
        # A stream holds its connection for hours: an 8 KiB read buffer (the default)
        # would be a third of its memory. Requests are read just as well through 1 KiB.
        self.rfile = sock.makefile("rb", _READ_BUFFER)

    def read_requestline(self) -> str:
        self.socket.settimeout(HEADER_TIMEOUT)
        return super().read_requestline()

    def MessageClass(self, rfile: Any, *args: Any) -> RequestHeaders:
        # pywsgi's name for what reads the headers; ours keeps to the limit as it reads.
        return RequestHeaders.read(rfile, HEADERS_MAX)

    def get_environ(self) -> dict[str, Any]:
        # The headers are in: the app's own waits take over.
        self.socket.settimeout(None)
        environ = super().get_environ()
        environ["chatroom.socket"] = self.socket
        # Asked once the response began (see chatroom.handover): pywsgi chose its framing.
        environ["chatroom.chunked"] = lambda: self.response_use_chunked
        environ["chatroom.connection"] = self.connection
        if self._local_address is None:
            with contextlib.suppress(OSError, IndexError):
                self._local_address = self.socket.getsockname()[0]
        if self._local_address is not None:
            environ["chatroom.local_address"] = self._local_address
        return environ

    def log_request(self) -> None:
        pass  # the chat keeps no access log (and formatting one costs a date per request)

    def handle_one_request(self) -> Any:
        result = super().handle_one_request()
        if isinstance(result, tuple) and result[0] == "414":
            return ("414", raw_response(414, "Request URI Too Long"))
        if isinstance(result, tuple) and result[0] == "400":
            return ("400", raw_response(400, "Bad Request"))
        return result

    def _handle_client_error(self, ex: BaseException) -> Any:
        if isinstance(ex, OSError):
            return None  # the client went quiet or away while sending headers: close
        log.info("refused a request from %s: %s", self.client_address, ex)
        if isinstance(ex, HeadersTooLarge):
            return ("431", raw_response(431, "Request Header Fields Too Large"))
        return ("400", raw_response(400, "Bad Request"))

    def _send_error_response_if_possible(self, error_code: int) -> None:
        if self.response_length:
            self.close_connection = True
            return
        body = error_json(error_code)
        status = "400 Bad Request" if error_code == 400 else "500 Internal Server Error"
        try:
            self.start_response(status, [
                ("Content-Type", "application/json"), ("Connection", "close"),
                ("Content-Length", str(len(body))),
            ])
            self.write(body)
        except OSError:
            self.close_connection = True


class ChatServer(WSGIServer):
    """pywsgi with Nagle's algorithm off and a bounded number of connections per address.

    pywsgi writes a response's headers and body in separate sends; with Nagle on, the
    body then waits for the client's delayed ACK (40 ms on Linux) on every request, and
    small SSE frames would wait the same way.
    """

    handler_class = ChatHandler

    def __init__(self, *args: Any, config: Config, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The one rule for a client that takes no data: a listener is cut when it falls
        # CHATROOM_CLIENT_BUFFER events behind (the fan-out), or when it has acknowledged
        # nothing for keep-alive + 10 s (the kernel, here), whether it vanished (no FIN,
        # no RST: a laptop closed, Wi-Fi gone) or stopped reading (a full window). The
        # keep-alives supply data to acknowledge, so a dead listener leaves presence
        # within 2 × keep-alive + 10 s; the fan-out counts both cuts as dropped.
        self._user_timeout_ms = int((config.keepalive + 10) * 1000)
        proxies = config.trusted_proxies

        def exempt(address: str) -> bool:
            return (
                config.rate_limit is None or network.is_this_computer(address)
                or network.client_address(address, "x", proxies) != address
            )

        self.slots = Slots(config.max_connections, exempt)

    def handle(self, sock: socket.socket, address: Any) -> None:
        ip = address[0] if isinstance(address, tuple) and address else ""
        connection = self.slots.take(ip)
        if connection is None:
            _refuse(sock)
            return
        # A Unix socket has no Nagle to turn off.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if hasattr(socket, "TCP_USER_TIMEOUT"):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, self._user_timeout_ms)
        handler = self.handler_class(sock, address, self)
        handler.connection = connection
        try:
            handler.handle()
        finally:
            if not connection.kept:
                connection.release()


def _refuse(sock: socket.socket) -> None:
    # Answer before the request is read, then read what the client sent: closing with
    # unread bytes would reset the connection, and the client would never see the answer.
    with contextlib.suppress(OSError):
        sock.sendall(raw_response(429, "Too Many Requests"))
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(1.0)
        while sock.recv(16384):
            pass
    sock.close()


def raise_open_files_limit() -> int | None:
    """Raise this process's open-files limit as far as allowed; return how many listeners fit.

    A desktop's default of 1024 would silently cap a class at about a thousand.
    """
    try:
        import resource
    except ImportError:  # Windows: no such limit to raise
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1_048_576
    if soft != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    # Each listener holds its connection and a duplicate of it while the app writes its stream.
    return max(0, (soft - _RESERVED_FILES) // 2)
