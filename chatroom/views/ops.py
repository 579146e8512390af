"""What operators and load balancers read: health and metrics."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

from .. import metrics, openapi
from ..current import get_chat

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Answer 200 while the broker works and 503 (degraded) while not: balancers read the code."""
    chat = get_chat()
    healthy = chat.broker.healthy
    body = {
        "status": "ok" if healthy else "degraded",
        "broker": chat.broker.kind,
        "listeners": len(chat.fanout),
    }
    where = chat.broker.whereabouts()
    if where:
        body["redis"] = where
    return jsonify(body), 200 if healthy else 503


@bp.get("/api/stats")
def live_stats() -> Response:
    """The figures of the stats page: listeners, rates, delivery latency, broker."""
    return jsonify(get_chat().stats.snapshot())


@bp.get("/metrics")
def metrics_text() -> Response:
    """Prometheus text: listeners, events published and delivered, drops, reconnects, requests."""
    current_app.extensions["chatroom.metrics"]()
    return Response(metrics.render(), mimetype=metrics.CONTENT_TYPE)


@bp.get("/api/openapi.json")
def openapi_document() -> Response:
    """The OpenAPI 3.1 document of every endpoint."""
    return jsonify(openapi.document())
