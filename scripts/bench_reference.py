"""The reference for posting speed: the least a Flask app on gevent can do for a post.

``scripts/bench.py --mode flask-reference`` serves this in place of the chat: a login
that sets a signed cookie, and a POST that reads the cookie and the JSON body and answers
201 with the message, kept in a list. No checks, no storage, no listeners: what is left
is Flask's and the server's own cost, which the chat's posts are compared with.
"""

from __future__ import annotations

import itertools
import socket
import sys
import time

from flask import Flask, abort, jsonify, request, session
from gevent.pywsgi import WSGIHandler, WSGIServer

app = Flask(__name__)
app.config.update(SECRET_KEY="reference", SESSION_REFRESH_EACH_REQUEST=False)
messages: list[dict] = []
ids = itertools.count(1)


@app.get("/healthz")
def healthz():
    return jsonify(status="ok")


@app.post("/login")
def login():
    session["user"] = request.get_json()["username"]
    return jsonify(username=session["user"])


@app.post("/api/rooms/<room>/messages")
def post(room: str):
    if "user" not in session:
        abort(401)
    text = request.get_json()["text"]
    message = {"id": next(ids), "room": room, "user": session["user"], "text": text,
               "ts": int(time.time() * 1000)}
    messages.append(message)
    del messages[:-1000]
    return jsonify(message), 201


class Handler(WSGIHandler):
    """pywsgi's handler with Nagle's algorithm off, as the chat's own server has it."""

    def handle(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().handle()


if __name__ == "__main__":
    WSGIServer(("127.0.0.1", int(sys.argv[1])), app, log=None,
               handler_class=Handler).serve_forever()
