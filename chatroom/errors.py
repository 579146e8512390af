"""Errors as clients see them: ``{"error": "<sentence>", "code": "<word>"}`` and a 4xx or 5xx."""

from __future__ import annotations

import json
import logging

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from .i18n import N_
from .storage import Unavailable

log = logging.getLogger(__name__)

# Messages for the HTTP errors Flask raises itself, so they read like ours.
_HTTP_MESSAGES = {
    400: (N_("The request could not be understood."), "bad_request"),
    404: (N_("There is nothing at this address."), "not_found"),
    405: (N_("This address does not accept that method."), "method_not_allowed"),
    413: (N_("The request is too large."), "too_large"),
    429: ("This address has too many connections open; close some tabs.",
          "too_many_connections"),
    500: ("Something went wrong on the server.", "internal_error"),
    414: ("The address is too long.", "uri_too_long"),
    431: ("The request's headers are too large.", "headers_too_large"),
}


class ApiError(Exception):
    """A client mistake or refusal, answered as JSON with ``status``."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
        extra: dict | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}
        # Further fields of the JSON answer (a mute's end, say).
        self.extra = extra or {}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None,
    extra: dict | None = None,
) -> Response:
    """Build the JSON answer for an error."""
    response = jsonify(error=message, code=code, **(extra or {}))
    response.status_code = status
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    return response


def error_json(status: int) -> bytes:
    """Return the JSON body of an error the WSGI server answers without the app."""
    message, code = _HTTP_MESSAGES.get(status, ("The request could not be understood.",
                                                "bad_request"))
    return json.dumps({"error": message, "code": code}).encode()


def raw_response(status: int, reason: str) -> bytes:
    """Return a whole HTTP response for an error the WSGI server answers by itself.

    A request line too long, a header that cannot be read: the app never sees those, and
    the client still gets the same JSON as from any other error.
    """
    body = error_json(status)
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        "X-Content-Type-Options: nosniff\r\n\r\n"
    ).encode("latin-1") + body


def _wants_page() -> bool:
    # A person who typed a wrong address gets a page; programs get JSON.
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return (
        request.method == "GET"
        and best == "text/html"
        and not request.path.startswith(("/api/", "/stream"))
    )


def init_app(app: Flask) -> None:
    """Answer every error, from our code or from Flask, in the same JSON shape."""

    @app.errorhandler(ApiError)
    def api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.code, exc.message, exc.headers, exc.extra)

    @app.errorhandler(Unavailable)
    def broker_down(exc: Unavailable) -> Response:
        return error_response(
            503, exc.code,
            f"The chat cannot deliver messages right now: {exc} Try again in a few seconds.",
            {"Retry-After": "2"},
        )

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Response | tuple[str, int]:
        status = exc.code or 500
        message, code = _HTTP_MESSAGES.get(status, (exc.description or exc.name, "http_error"))
        if _wants_page():
            return render_template("error.html", message=message, status=status), status
        # Werkzeug's own headers say text/html: keep only those that matter (Allow, …).
        headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
        return error_response(status, code, message, headers)

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "Something went wrong on the server.")
