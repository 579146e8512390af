"""chatroom: a real-time chat room for local networks and for teaching Server-Sent Events."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from flask import Flask

__all__ = ["__version__", "create_app"]


def create_app(config: Any = None) -> Flask:
    """Build the chat's WSGI app (see :func:`chatroom.app.create_app`)."""
    # Imported here so that ``chatroom.cli`` can monkey-patch before Flask or redis load.
    from .app import create_app as _create_app

    return _create_app(config)
