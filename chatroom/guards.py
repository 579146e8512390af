"""Protections against misuse: foreign host names, cross-site requests, and floods.

Limits count per session *and* per client address, so neither a fresh name nor a fresh
cookie buys a fresh allowance. This computer (127.0.0.1, ::1) has no per-address limits,
and ``CHATROOM_RATE_LIMIT=off`` lifts them all (load tests).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request

from . import network
from .config import Config, RateLimit
from .errors import ApiError
from .storage import Storage

_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}

# Per client address: enough for a class behind one address to log in together.
LOGINS_PER_ADDRESS = RateLimit(20, 60.0)
ROOMS_PER_SESSION = RateLimit(3, 60.0)
ROOMS_PER_ADDRESS = RateLimit(6, 60.0)
# Posts from one address: a few people's worth of the per-person limit.
POSTS_PER_ADDRESS_FACTOR = 3

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self';"
    " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def client_address() -> str:
    """Return the address of the person making this request (see :mod:`.network`)."""
    if "client_address" not in g:
        config: Config = current_app.extensions["chatroom"].config
        environ = request.environ
        g.client_address = network.client_address(
            environ.get("REMOTE_ADDR") or "", environ.get("HTTP_X_FORWARDED_FOR"),
            config.trusted_proxies,
        )
    return g.client_address


def limit(
    storage: Storage, limit: RateLimit | None, key: str, what: str, per_address: bool = False
) -> None:
    """Count one action under ``key``; answer 429 with ``Retry-After`` past ``limit``.

    With ``per_address``, the count is kept for the client address instead (this
    computer is not counted).
    """
    if limit is None:
        return
    if per_address:
        address = client_address()
        if network.is_this_computer(address):
            return
        key = f"{key}:addr:{address}"
    wait = storage.rate_hit(key, limit)
    if wait:
        raise too_soon(
            wait, "rate_limited",
            f"Slow down: at most {limit.count} {what} every {limit.seconds:g} seconds.",
        )


def too_soon(wait: float, code: str, sentence: str) -> ApiError:
    """Return the 429 for an action allowed again in ``wait`` seconds (whole, at least 1)."""
    seconds = max(1, math.ceil(wait))
    return ApiError(
        429, code, f"{sentence} Try again in {seconds} s.", {"Retry-After": str(seconds)}
    )


# A rate window a post counts in, as storage counts it with the append: its key, its
# limit, and the 429 a post past it gets, given the seconds until it may be sent.
Window = tuple[str, RateLimit, Callable[[float], ApiError]]


def post_windows(config: Config, session: str) -> list[Window]:
    """The rate windows one message (room or private) counts in: its session's and its
    client address's."""
    per_user = config.rate_limit
    if per_user is None:
        return []
    windows = [(f"post:sess:{session}", per_user, _refusal(per_user, "messages"))]
    address = client_address()
    if not network.is_this_computer(address):
        per_address = RateLimit(per_user.count * POSTS_PER_ADDRESS_FACTOR, per_user.seconds)
        windows.append((f"post:addr:{address}", per_address,
                        _refusal(per_address, "messages from one address")))
    return windows


def _refusal(past: RateLimit, what: str) -> Callable[[float], ApiError]:
    return lambda wait: too_soon(
        wait, "rate_limited",
        f"Slow down: at most {past.count} {what} every {past.seconds:g} seconds.",
    )


def check_login_rate(storage: Storage, config: Config) -> None:
    """Count one login from this client address."""
    if config.rate_limit is not None:
        limit(storage, LOGINS_PER_ADDRESS, "login", "logins from one address", per_address=True)


def check_room_rate(storage: Storage, config: Config, session: str) -> None:
    """Count one room created by a session and by its client address."""
    if config.rate_limit is None:
        return
    limit(storage, ROOMS_PER_SESSION, f"room:sess:{session}", "new rooms")
    limit(storage, ROOMS_PER_ADDRESS, "room", "new rooms from one address", per_address=True)


def init_app(app: Flask, config: Config) -> None:
    """Serve only this server's host names; refuse what a page of another site sends."""
    names = network.own_names(h for h in config.allowed_hosts if h != "*")
    any_host = "*" in config.allowed_hosts

    @app.before_request
    def own_host_only() -> None:
        # Load balancers probe health under whatever name they were given; the answer
        # holds no chat data, so a page elsewhere learns nothing by reaching it.
        if any_host or request.path == "/healthz":
            return
        host = network.host_part(request.host)
        if not network.is_own_host(host, names, request.environ.get("chatroom.local_address")):
            raise ApiError(
                400, "unknown_host",
                "This server does not answer to that host name. Use its address, or add"
                " the name to CHATROOM_ALLOWED_HOSTS.",
            )

    @app.before_request
    def same_origin_only() -> None:
        if request.method not in _STATE_CHANGING:
            return
        source = request.headers.get("Origin") or request.headers.get("Referer")
        # No Origin and no Referer: not a browser acting for a page (curl, Locust).
        if source is None:
            return
        if source == "null" or urlsplit(source).netloc.lower() != request.host.lower():
            raise ApiError(
                403, "cross_origin",
                "Requests that change things must come from this chat's own pages.",
            )

    @app.after_request
    def protective_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            response.headers.setdefault("Content-Security-Policy", _CSP)
        return response
