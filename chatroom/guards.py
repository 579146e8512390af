"""Protections against misuse: cross-site requests and message floods."""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from flask import Flask, request

from .config import RateLimit
from .errors import ApiError
from .identity import User
from .storage import Storage

_STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def check_rate(storage: Storage, limit: RateLimit | None, user: User) -> None:
    """Count one message of ``user``; answer 429 with ``Retry-After`` past the limit."""
    if limit is None:
        return
    wait = storage.rate_hit(user.key, limit)
    if wait:
        seconds = max(1, math.ceil(wait))
        raise ApiError(
            429, "rate_limited",
            f"Slow down: at most {limit.count} messages every {limit.seconds:g} seconds."
            f" Try again in {seconds} s.",
            {"Retry-After": str(seconds)},
        )


def init_app(app: Flask) -> None:
    """Refuse state-changing requests that a page of another site made a browser send."""

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
