"""The pages people open in a browser."""

from __future__ import annotations

from flask import Blueprint, render_template

from ..identity import session_user

bp = Blueprint("pages", __name__)


@bp.get("/")
def index() -> str:
    """Show the chat, or the name picker to a visitor who has not logged in."""
    user = session_user()
    if user is None:
        return render_template("login.html")
    return render_template("chat.html", user=user.name, host=user.host)


@bp.get("/inspect")
def inspect() -> str:
    """Show the wire view: the stream's raw frames beside the events a browser makes of them."""
    return render_template("inspect.html")


@bp.get("/stats")
def stats() -> str:
    """Show live statistics, big enough to project."""
    return render_template("stats.html")
