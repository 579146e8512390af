"""Posting messages and reading history."""

from __future__ import annotations

import time

from services import ChatServer


def test_post_answers_the_message(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("po"))
    before = time.time() * 1000
    message = visitor.say("  hello there  ")
    assert set(message) == {"id", "room", "user", "text", "ts"}
    assert message["text"] == "hello there"
    assert message["room"] == "general"
    assert message["user"] == visitor.name
    assert before - 1000 <= message["ts"] <= time.time() * 1000 + 1000


def test_form_posts_work_too(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("fo"))
    answer = visitor.request("POST", "/api/rooms/general/messages", data={"text": "by form"})
    assert answer.status_code == 201
    assert answer.json()["text"] == "by form"


def test_ids_increase(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("id"))
    ids = [visitor.say(f"m{i}")["id"] for i in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_bad_texts_get_a_reason_and_nothing_is_stored(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("tx"))
    cases = [({"text": ""}, "empty_text"), ({"text": " \n\t "}, "empty_text"),
             ({"text": "x" * 2001}, "text_too_long"), ({"text": 12}, "invalid_text"),
             ({}, "invalid_text"), ([1, 2], "invalid_json")]
    for body, code in cases:
        answer = visitor.request("POST", "/api/rooms/general/messages", json=body)
        assert answer.status_code == 400, body
        assert answer.json()["code"] == code
    bad_json = visitor.request(
        "POST", "/api/rooms/general/messages", data="{nope",
        headers={"Content-Type": "application/json"},
    )
    assert bad_json.status_code == 400 and bad_json.json()["code"] == "invalid_json"
    assert visitor.say("y" * 2000)["text"] == "y" * 2000  # the limit itself is fine
    assert [m["text"] for m in visitor.history()] == ["y" * 2000]


def test_posting_needs_a_login_and_a_room(server: ChatServer, unique) -> None:
    assert server.visitor().post("anonymous").status_code == 401
    visitor = server.visitor(unique("nr"))
    missing = visitor.post("hi", room="nowhere")
    assert missing.status_code == 404 and missing.json()["code"] == "unknown_room"
    bad = visitor.post("hi", room="Bad Name")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_room_name"


def test_history_is_oldest_first_with_limit_and_before(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("hi"))
    posted = [visitor.say(f"n{i}") for i in range(30)]
    assert visitor.history() == posted
    assert visitor.history(limit=5) == posted[-5:]
    assert visitor.history(limit=5, before=posted[10]["id"]) == posted[5:10]
    assert visitor.history(before=posted[0]["id"]) == []


def test_history_arguments_are_checked(server: ChatServer) -> None:
    visitor = server.visitor()
    for params, code in [({"limit": "x"}, "invalid_limit"), ({"limit": 0}, "invalid_limit"),
                         ({"limit": 100000}, "invalid_limit"), ({"before": "y"}, "invalid_before")]:
        answer = visitor.request("GET", "/api/rooms/general/messages", params=params)
        assert answer.status_code == 400, params
        assert answer.json()["code"] == code
    assert visitor.request("GET", "/api/rooms/nowhere/messages").status_code == 404


def test_rooms_keep_their_own_history(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("own"))
    room = unique("side")
    visitor.create_room(room)
    visitor.say("in general")
    visitor.say("in the side room", room=room)
    assert [m["text"] for m in visitor.history()] == ["in general"]
    assert [m["text"] for m in visitor.history(room)] == ["in the side room"]


def test_retention_keeps_the_newest(mode, start_server, unique) -> None:
    server = start_server(mode, env={"CHATROOM_HISTORY": "40"})
    visitor = server.visitor(unique("re"))
    posted = [visitor.say(f"r{i}") for i in range(150)]
    kept = visitor.history(limit=1000)
    assert kept == posted[-len(kept):]
    assert 40 <= len(kept) < 40 + 33


def test_unicode_and_markup_come_back_unchanged(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("uc"))
    text = "<script>alert('x')</script> \"quotes\" 日本語 🎉 \\n \u2028 end"
    assert visitor.say(text)["text"] == text
    assert visitor.history()[-1]["text"] == text
