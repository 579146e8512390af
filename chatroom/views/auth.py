"""Logging in and out: a display name in the session cookie, held while its owner is online."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, redirect, render_template, request, session

from .. import validation
from ..app import get_chat
from ..errors import ApiError
from ..guards import check_login_rate
from ..identity import User, new_session_id, session_user

bp = Blueprint("auth", __name__)


@bp.post("/login")
def login() -> Response | tuple[str, int]:
    """Take a display name; 409 if someone online holds it."""
    try:
        name = validation.display_name(validation.body_field("username"))
        previous = session_user()
        sid = previous.session if previous else new_session_id()
        user = User(name, validation.name_key(name), sid)
        names = get_chat().names
        check_login_rate(get_chat().storage, get_chat().config)
        if not names.claim(user):
            raise ApiError(
                409, "name_taken", f"The name {name!r} is in use by someone online. Pick another."
            )
    except ApiError as exc:
        if not _browser_form():
            raise
        return render_template("login.html", error=exc.message), exc.status
    if previous is not None and previous.key != user.key:
        names.release(previous)
    get_chat().storage.remember_user(user.key, name)
    session.clear()
    session.permanent = True
    session.update(user=name, sid=sid)
    if request.form:
        return redirect("/", code=303)
    return jsonify(username=name)


def _browser_form() -> bool:
    # A page's form gets the form back with the reason; programs get JSON.
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return bool(request.form) and best == "text/html"


@bp.post("/logout")
def logout() -> Response:
    """End the session and free its name."""
    user = session_user()
    if user is not None:
        get_chat().names.release(user)
    session.clear()
    if request.form:
        return redirect("/", code=303)
    return jsonify(ok=True)
