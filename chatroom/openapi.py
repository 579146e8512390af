"""The OpenAPI 3.1 document of the HTTP interface, served at ``GET /api/openapi.json``.

One table, :data:`OPERATIONS`, says every endpoint: its parameters, body, answers and the
error codes it can give. A test compares it with the app's routes, so a route missing here
fails, and a schema-driven fuzzer (schemathesis) checks the server's answers against it.
"""

from __future__ import annotations

from typing import Any

from . import __version__

JSON = "application/json"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": props}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_NAMES = {"type": "array", "items": _STR}

SCHEMAS: dict[str, Any] = {
    "Error": _obj(["error", "code"], error=_STR, code={"type": "string", "pattern": "^[a-z_]+$"}),
    "Message": _obj(["id", "room", "user", "text", "ts"], id=_INT, room=_STR, user=_STR,
                    text=_STR, ts=_INT, host=_BOOL, mentions=_NAMES),
    "PrivateMessage": {
        "type": "object", "required": ["id", "from", "to", "text", "ts"],
        "properties": {"id": _INT, "from": _STR, "to": _STR, "text": _STR, "ts": _INT},
    },
    "Room": _obj(["name", "online", "created_by"], name=_STR, online=_INT,
                 created_by={"type": ["string", "null"]}, read_only=_BOOL, slow_mode=_INT),
    "Messages": _obj(["messages"], messages={"type": "array", "items": _ref("Message")}),
    "PrivateMessages": _obj(
        ["messages"], messages={"type": "array", "items": _ref("PrivateMessage")}
    ),
    "Text": _obj(["text"], text={"type": "string", "minLength": 1, "maxLength": 2000}),
    "HostEvent": {"type": "object", "description": "The event's data, as on the stream."},
}

# Error codes every endpoint can give, whatever it does.
_ANYWHERE = {
    400: ["unknown_host", "bad_request"],
    413: ["too_large"],
    503: ["broker_unavailable", "storage_unavailable"],
}
_CHANGES = {403: ["cross_origin"]}


def _op(
    method: str, path: str, summary: str, answer: tuple[int, Any] | None = None,
    errors: dict[int, list[str]] | None = None, query: dict[str, Any] | None = None,
    body: Any = None, content: str = JSON, form: bool = False,
    headers: dict[str, Any] | None = None,
) -> tuple[str, str, dict[str, Any]]:
    status, schema = answer or (200, {"type": "object"})
    kinds = {content: {"schema": schema}}
    if form:
        # A browser's form gets the page (after a 303 to it) instead of JSON.
        kinds["text/html"] = {"schema": {"type": "string"}}
    responses: dict[str, Any] = {str(status): {"description": "Done.", "content": kinds}}
    if form:
        responses["303"] = {"description": "A form's answer: go to the chat."}
    codes: dict[int, list[str]] = {}
    for table in (_ANYWHERE, _CHANGES if method != "get" else {}, errors or {}):
        for code, words in table.items():
            codes.setdefault(code, []).extend(words)
    for code, words in sorted(codes.items()):
        responses[str(code)] = {
            "description": "Error codes: " + ", ".join(f"`{w}`" for w in words) + ".",
            "content": {JSON: {"schema": _ref("Error")}},
        }
    params = [
        {"name": name, "in": "path", "required": True, "schema": _STR}
        for name in _path_names(path)
    ]
    params += [{"name": name, "in": "query", "schema": schema}
               for name, schema in (query or {}).items()]
    params += [{"name": name, "in": "header", "schema": schema}
               for name, schema in (headers or {}).items()]
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body is not None:
        kinds = {JSON: {"schema": body}}
        if form:
            kinds["application/x-www-form-urlencoded"] = {"schema": body}
        operation["requestBody"] = {"required": True, "content": kinds}
    return method, path, operation


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


_LIMIT = {"limit": {"type": "integer", "minimum": 1, "maximum": 1000},
          "before": {"type": "integer", "minimum": 1}}
_PAGE = (200, {"type": "string"})
_LOGIN = {401: ["login_required"]}
_HOST = {401: ["login_required"], 403: ["host_only"]}
_ROOM = {400: ["invalid_room_name"], 404: ["unknown_room"]}
_USER = {400: ["invalid_username"], 404: ["unknown_user"]}
_POSTING = {403: ["muted", "banned"], 409: ["name_taken"], 429: ["rate_limited"],
            400: ["invalid_json", "invalid_text", "empty_text", "text_too_long",
                  "invalid_idempotency_key"]}
# The same key again within ten minutes answers the first message; nothing new is stored.
_ONCE = {"Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 255}}

OPERATIONS = [
    _op("get", "/", "The chat page, or the name picker.", _PAGE, content="text/html"),
    _op("post", "/login", "Log in with a display name: a new session.",
        (200, _obj(["username"], username=_STR)),
        {400: ["invalid_username", "invalid_json"], 403: ["banned"], 409: ["name_taken"],
         429: ["rate_limited"]},
        body=_obj(["username"], username=_STR), form=True),
    _op("post", "/logout", "End the session everywhere.", (200, _obj(["ok"], ok=_BOOL))),
    _op("get", "/api/session", "This browser's session.",
        (200, _obj(["username", "host"], username=_STR, host=_BOOL, muted=_BOOL,
                   muted_until={"type": ["integer", "null"]})), _LOGIN),
    _op("get", "/api/rooms", "Every room with its online count.",
        (200, _obj(["rooms"], rooms={"type": "array", "items": _ref("Room")})), _LOGIN),
    _op("post", "/api/rooms", "Create a room (room_created).", (201, _ref("Room")),
        {**_LOGIN, 400: ["invalid_room_name", "invalid_json"], 403: ["too_many_rooms"],
         409: ["room_exists", "name_taken"], 429: ["rate_limited"]},
        body=_obj(["name"], name=_STR)),
    _op("delete", "/api/rooms/{room}", "Close a room (room_closed): its creator or the host.",
        (200, _obj(["closed"], closed=_STR)),
        {**_LOGIN, **_ROOM, 403: ["not_room_creator", "cannot_close_general"],
         409: ["name_taken"]}),
    _op("patch", "/api/rooms/{room}", "Host: read-only or slow mode (room_updated).",
        (200, _ref("HostEvent")), {**_HOST, 400: ["invalid_room_name", "invalid_settings"],
                                   404: ["unknown_room"]},
        body={"type": "object", "properties": {"read_only": _BOOL, "slow_mode": _INT}}),
    _op("get", "/api/rooms/{room}/messages", "A room's history, oldest first.",
        (200, _ref("Messages")), {**_LOGIN, **_ROOM, 400: ["invalid_limit", "invalid_before",
                                                          "invalid_room_name"]}, query=_LIMIT),
    _op("post", "/api/rooms/{room}/messages", "Post a message: 201 with it.",
        (201, _ref("Message")),
        {**_LOGIN, **_POSTING, 403: ["muted", "banned", "read_only"], 404: ["unknown_room"],
         429: ["rate_limited", "slow_mode"],
         400: ["invalid_room_name", *_POSTING[400]]},
        body=_ref("Text"), form=True, headers=_ONCE),
    _op("delete", "/api/rooms/{room}/messages/{message_id}",
        "Delete a message (message_deleted): its author or the host.",
        (200, _ref("HostEvent")),
        {**_LOGIN, **_ROOM, 403: ["not_author"], 404: ["unknown_room", "unknown_message"]}),
    _op("get", "/api/rooms/{room}/presence", "Who is online in a room.",
        (200, _obj(["room", "online"], room=_STR, online=_NAMES)), {**_LOGIN, **_ROOM}),
    _op("post", "/api/rooms/{room}/clear", "Host: empty a room's history (room_cleared).",
        (200, _obj(["cleared"], cleared=_STR)), {**_HOST, **_ROOM}),
    _op("get", "/api/rooms/{room}/export", "Host: a room's history as a download.",
        (200, {"type": "string"}), {**_HOST, **_ROOM, 400: ["invalid_format",
                                                           "invalid_room_name"]},
        query={"format": {"type": "string", "enum": ["txt", "html", "json", "csv"]}},
        content="text/plain"),
    _op("post", "/api/users/{name}/messages", "Send a private message.",
        (201, _ref("PrivateMessage")),
        {**_LOGIN, **_POSTING, **_USER, 403: ["muted", "banned", "private_messages_off"],
         400: ["invalid_username", "message_to_self", *_POSTING[400]]},
        body=_ref("Text"), form=True, headers=_ONCE),
    _op("get", "/api/users/{name}/messages", "The conversation with that user.",
        (200, _ref("PrivateMessages")),
        {**_LOGIN, **_USER, 400: ["invalid_username", "message_to_self", "invalid_limit",
                                  "invalid_before"]}, query=_LIMIT),
    _op("post", "/api/users/{name}/mute", "Host: mute a user (user_muted).",
        (200, _ref("HostEvent")), {**_HOST, **_USER, 400: ["invalid_username",
                                                          "invalid_minutes", "invalid_json"]},
        body={"type": "object", "properties": {"minutes": {"type": "number"}}}),
    _op("delete", "/api/users/{name}/mute", "Host: unmute a user (user_unmuted).",
        (200, _ref("HostEvent")), {**_HOST, **_USER}),
    _op("post", "/api/users/{name}/kick", "Host: end a user's session (kicked).",
        (200, _obj(["kicked"], kicked=_STR)),
        {**_HOST, **_USER, 400: ["invalid_username", "kick_self"]}),
    _op("post", "/api/users/{name}/ban", "Host: kick, and refuse that client address.",
        (200, _obj(["banned", "address"], banned=_STR, address=_STR)),
        {**_HOST, **_USER, 400: ["invalid_username", "ban_self", "kick_self"]}),
    _op("get", "/api/bans", "Host: every banned client address.",
        (200, _obj(["bans"], bans={"type": "array", "items": {"type": "object"}})), _HOST),
    _op("delete", "/api/bans/{address}", "Host: lift a ban.",
        (200, _obj(["lifted"], lifted=_STR)), {**_HOST, 404: ["unknown_ban"]}),
    _op("get", "/api/settings", "The chat's settings.",
        (200, _obj(["private_messages"], private_messages=_BOOL))),
    _op("patch", "/api/settings", "Host: private messages on or off (settings).",
        (200, _ref("HostEvent")), {**_HOST, 400: ["invalid_settings"]},
        body=_obj(["private_messages"], private_messages=_BOOL)),
    _op("post", "/api/wipe", "Host: delete every room's history (room_cleared each).",
        (200, _obj(["cleared"], cleared=_NAMES)), _HOST),
    _op("get", "/host", "Make this browser's session the host's, then go to /.",
        (303, {"type": "string"}), {403: ["wrong_host_token"], 429: ["rate_limited"]},
        query={"token": _STR}, content="text/html"),
    _op("get", "/stream", "Server-Sent Events: the rooms, room and host events, and this"
        " session's private messages. Events: message, dm, presence, join, leave,"
        " room_created, room_closed, message_deleted, room_cleared, room_updated, user_muted,"
        " user_unmuted, kicked, settings; each stored event has an id: <epoch>-<id>.",
        (200, {"type": "string"}),
        {400: ["invalid_last_event_id", "invalid_room_name", "too_many_rooms"],
         401: ["login_required", "session_ended"], 403: ["banned"], 404: ["unknown_room"]},
        query={"room": {"type": "array", "items": _STR}, "last_event_id": _STR},
        content="text/event-stream"),
    _op("get", "/inspect", "The wire view.", _PAGE, content="text/html"),
    _op("get", "/stats", "The live statistics page.", _PAGE, content="text/html"),
    _op("get", "/api/stats", "The live statistics page's figures.", (200, {"type": "object"})),
    _op("get", "/healthz", "200 while the broker works; 503 while it does not.",
        (200, _obj(["status", "broker"], status=_STR, broker=_STR, listeners=_INT,
                   redis=_obj([], service=_STR, primary={"type": ["string", "null"]})))),
    _op("get", "/metrics", "Prometheus text.", (200, {"type": "string"}),
        content="text/plain"),
    _op("get", "/favicon.ico", "The icon.", (200, {"type": "string"}), content="image/svg+xml"),
    _op("get", "/api/openapi.json", "This document.", (200, {"type": "object"})),
]


def document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document."""
    paths: dict[str, dict[str, Any]] = {}
    for method, path, operation in OPERATIONS:
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "chatroom", "version": __version__,
            "description": "A real-time chat room for local networks and for teaching"
            " Server-Sent Events. Errors are JSON: {\"error\": sentence, \"code\": word}.",
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }
