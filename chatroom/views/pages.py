"""The pages people open in a browser."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template

from .. import validation
from ..identity import session_user
from .rooms import HISTORY_DEFAULT, OLDER_PAGE

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> str:
    """Show the chat, or the name picker to a visitor who has not logged in."""
    user = session_user()
    if user is None:
        return render_template("login.html")
    limits = {
        "text_max": validation.TEXT_MAX, "history_page": HISTORY_DEFAULT,
        "older_page": OLDER_PAGE, "room_pattern": validation.ROOM_PATTERN_JS,
        "room_max": validation.ROOM_MAX,
    }
    return render_template(
        "chat.html", user=user.name, user_key=user.key, host=user.host, limits=limits
    )


@bp.get("/favicon.ico")
def favicon() -> Response:
    """The icon browsers ask for on every page."""
    return current_app.send_static_file("favicon.svg")


@bp.get("/inspect")
def inspect() -> str:
    """Show the wire view: the stream's raw frames beside the events a browser makes of them."""
    return render_template("inspect.html")


@bp.get("/stats")
def stats() -> str:
    """Show live statistics, big enough to project."""
    return render_template("stats.html")
