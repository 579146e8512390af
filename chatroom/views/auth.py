"""Logging in and out: a new server-side session per login, holding a display name."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, redirect, render_template, request, session

from .. import i18n, validation
from ..current import get_chat, page_language
from ..errors import ApiError
from ..guards import check_login_rate, client_address
from ..identity import require_user, session_user
from ..moderation import check_not_banned, muted_until

bp = Blueprint("auth", __name__)


@bp.post("/login")
def login() -> Response | tuple[str, int]:
    """Take a display name; 409 if someone online holds it."""
    chat = get_chat()
    try:
        name = validation.display_name(validation.body_field("username"))
        check_not_banned(chat.storage)
        check_login_rate(chat.storage, chat.config)
        # Whatever cookie came with the request, the session is a new one (no fixation).
        previous = session_user()
        host = bool(session.get("host_pending")) or (previous is not None and previous.host)
        user = chat.sessions.login(name, previous, host, client_address())
    except ApiError as exc:
        if not _browser_form():
            raise
        return render_template("login.html", error=_form_error(exc)), exc.status
    session.clear()
    session.permanent = True
    session["sid"] = user.session
    if request.form:
        return redirect("/", code=303)
    return jsonify(username=name)


def _form_error(exc: ApiError) -> str:
    # The name picker speaks its reader's language; API clients get the English sentence.
    gettext = i18n.catalog(page_language()).gettext
    known = {
        "name_taken": gettext("That name is in use by someone online. Pick another."),
        "invalid_username": gettext(
            "A name is 1 to 32 characters, with no invisible characters."
        ),
        "rate_limited": gettext("Too many logins from this device: wait a minute."),
        "banned": gettext("The host has banned this device from the chat."),
    }
    return known.get(exc.code, gettext("That did not work: try again."))


def _browser_form() -> bool:
    # A page's form gets the form back with the reason; programs get JSON.
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return bool(request.form) and best == "text/html"


@bp.post("/logout")
def logout() -> Response:
    """End the session everywhere: its cookie, its streams, its name."""
    user = session_user()
    if user is not None:
        get_chat().sessions.end(user.session)
    session.clear()
    if request.form:
        return redirect("/", code=303)
    return jsonify(ok=True)


@bp.get("/api/session")
def whoami() -> Response:
    """Who this browser is logged in as; 401 once the session has ended."""
    user = require_user()
    muted, until = muted_until(get_chat().storage, user.session)
    return jsonify(username=user.name, host=user.host, muted=muted, muted_until=until)
