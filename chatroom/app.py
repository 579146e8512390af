"""The application factory: a Flask app around one chat (see :mod:`.chat`)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

import gevent
from flask import Flask, Response

from . import __version__, errors, guards, i18n, lookalike, metrics
from .broker import open_broker
from .chat import Chat
from .config import Config, new_host_token
from .cookies import SessionCookies
from .current import page_language
from .fanout import Fanout
from .identity import NameHolds, Sessions
from .presence import Presence
from .renewal import Renewal
from .stats import LiveStats

log = logging.getLogger(__name__)


def create_app(config: Config | Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, then ``CHATROOM_*`` variables, then ``config``'s values.

    ``gunicorn -k gevent 'chatroom:create_app()'`` serves it as it is.
    """
    if not isinstance(config, Config):
        config = Config.from_env().updated(config or {})
    if config.host_token is None:
        # Nobody is told this one: several processes (gunicorn) set CHATROOM_HOST_TOKEN.
        config = replace(config, host_token=new_host_token())

    # A missing table is a start-up error, not a failed login; reading it (a few hundred
    # milliseconds in the executable) waits until the server answers.
    lookalike.table_file()
    gevent.spawn_later(0.5, lookalike.load)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=config.load_secret_key(),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="chatroom_session",
        PERMANENT_SESSION_LIFETIME=timedelta(days=365),
        # The cookie only names the server-side session, which keeps its own expiry:
        # signing it again into every answer cost a seventh of a post's time.
        SESSION_REFRESH_EACH_REQUEST=False,
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.session_interface = SessionCookies()
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    broker = open_broker(config)
    fanout = Fanout(broker.storage, config.keepalive)
    names = NameHolds(broker.storage, config.name_hold)
    presence = Presence(broker)
    chat = Chat(
        config, broker, fanout, names, Sessions(broker.storage, names, broker.announce),
        presence, LiveStats(fanout, broker), Renewal(names.renew, presence.renew),
    )
    chat.renewal.start()
    broker.start(fanout.receive, fanout.resync, chat.names.held, fanout.offer)
    app.extensions["chatroom"] = chat
    sync = app.extensions["chatroom.metrics"] = metrics.Sync(chat)
    # With several workers, each copies its counters to the shared files every second
    # (a scrape reaches one worker); alone, the scrape itself copies them.
    chat.stats.start(*([sync] if metrics.multiprocess_dir() else []))

    errors.init_app(app)
    guards.init_app(app, config)
    from .views import auth, host, ops, pages, rooms, stream, users

    for module in (pages, auth, rooms, users, stream, ops, host):
        app.register_blueprint(module.bp)

    @app.after_request
    def _count(response: Response) -> Response:
        metrics.REQUESTS.labels(str(response.status_code)).inc()
        return response

    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        lambda text: i18n.catalog(page_language()).gettext(text),
        lambda one, many, n: i18n.catalog(page_language()).ngettext(one, many, n),
        newstyle=True,
    )

    @app.context_processor
    def _globals() -> dict[str, Any]:
        lang = page_language()
        return {"version": __version__, "lang": lang, "strings": i18n.strings(lang)}

    log.info("chatroom %s using %s", __version__, broker.describe())
    return app
