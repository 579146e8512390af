"""Client mistakes get a JSON error with a 4xx, never a 500 or a traceback."""

from __future__ import annotations

import requests

from services import ChatServer


def test_unknown_api_paths_are_json_404(server: ChatServer) -> None:
    for path in ["/api/nothing", "/api/rooms/general/nothing", "/api"]:
        answer = requests.get(server.url + path, timeout=5)
        assert answer.status_code == 404
        assert answer.json()["code"] == "not_found"


def test_wrong_methods_are_json_405(server: ChatServer) -> None:
    answer = requests.put(server.url + "/api/rooms", timeout=5)
    assert answer.status_code == 405
    assert answer.json()["code"] == "method_not_allowed"


def test_a_person_gets_a_page_for_a_wrong_address(server: ChatServer) -> None:
    answer = requests.get(server.url + "/nope", headers={"Accept": "text/html"}, timeout=5)
    assert answer.status_code == 404
    assert "<html" in answer.text and "Back to the chat" in answer.text


def test_oversized_bodies_are_refused(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("big"))
    answer = visitor.request(
        "POST", "/api/rooms/general/messages", json={"text": "x" * 200_000}
    )
    assert answer.status_code == 413
    assert answer.json()["code"] == "too_large"


def test_garbage_never_causes_a_500(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("gb"))
    attempts = [
        ("POST", "/login", {"data": b"\xff\xfe", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/login", {"json": None}),
        ("POST", "/login", {"json": ["list"]}),
        ("POST", "/api/rooms", {"data": "name=%ZZ"}),
        ("POST", "/api/rooms/general/messages", {"json": {"text": "\x00"}}),
        ("GET", "/api/rooms/%00/messages", {}),
        ("GET", "/stream?room=" + "a" * 500, {}),
        ("GET", "/stream?room=general", {"headers": {"Last-Event-ID": "abc"}}),
        ("GET", "/stream?room=general", {"headers": {"Last-Event-ID": "-5"}}),
        ("DELETE", "/api/rooms/nowhere", {}),
    ]
    for method, path, kwargs in attempts:
        answer = visitor.request(method, path, stream=True, **kwargs)
        assert 400 <= answer.status_code < 500 or answer.status_code in (200, 201), (path, answer)
        if answer.status_code >= 400:
            assert answer.json()["error"], path
        answer.close()
    assert "Traceback" not in server.output()
