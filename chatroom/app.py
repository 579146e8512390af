"""The application factory and the one accessor for the chat's shared parts."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import gevent
from flask import Flask, Response, current_app, g, request

from . import __version__, errors, guards, i18n, lookalike, metrics
from .broker import Broker, open_broker
from .config import Config, new_host_token
from .events import Draft, Event
from .hub import Hub
from .identity import NameHolds, Sessions
from .presence import Presence
from .stats import LiveStats
from .storage import Storage

log = logging.getLogger(__name__)


@dataclass
class Chat:
    """The parts every view shares: settings, broker (with its storage), hub, names, presence."""

    config: Config
    broker: Broker
    hub: Hub
    names: NameHolds
    sessions: Sessions
    presence: Presence
    stats: LiveStats

    @property
    def storage(self) -> Storage:
        return self.broker.storage

    def publish(self, draft: Draft) -> Event:
        """Store ``draft`` with its id and send it to every listener of every process."""
        return self.post(draft)[0]

    def post(self, draft: Draft) -> tuple[Event, bool]:
        """Publish ``draft``; False with the earlier event if its key was posted already."""
        event, fresh = self.broker.publish(draft)
        if fresh:
            metrics.PUBLISHED.inc()
        return event, fresh

    def close(self) -> None:
        """Stop background work and release the broker, once the hub has ended the streams."""
        self.names.stop()
        self.presence.stop()
        self.broker.close()


def page_language() -> str:
    """Return the language of the page being answered (see :mod:`.i18n`)."""
    if "language" not in g:
        g.language = i18n.page_language(
            request.cookies.get(i18n.COOKIE), request.accept_languages.values()
        )
    return g.language


def get_chat() -> Chat:
    """Return the chat of the current app."""
    return current_app.extensions["chatroom"]


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
        MAX_CONTENT_LENGTH=64 * 1024,
    )
    app.json.sort_keys = False
    app.json.ensure_ascii = False

    broker = open_broker(config)
    hub = Hub(config.keepalive)
    names = NameHolds(broker.storage, config.name_hold)
    chat = Chat(
        config, broker, hub, names, Sessions(broker.storage, names, broker.announce),
        Presence(broker), LiveStats(hub, broker),
    )
    broker.start(hub.deliver, lambda after: hub.resync(broker.storage, after), chat.names.held)
    app.extensions["chatroom"] = chat
    app.extensions["chatroom.metrics"] = metrics.Sync(chat)

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
