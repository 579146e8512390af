"""``Idempotency-Key``: a post sent again answers the first message, in both broker modes."""

from __future__ import annotations

import threading

import pytest

from services import ChatServer


def post(visitor, text: str, key: str | None, path: str = "/api/rooms/general/messages"):
    headers = {} if key is None else {"Idempotency-Key": key}
    return visitor.request("POST", path, json={"text": text}, headers=headers)


def test_the_same_key_again_answers_the_first_message(server: ChatServer, unique) -> None:
    ana = server.visitor(unique("ana"))
    with server.stream() as stream:
        stream.wait_for(lambda fs: fs)
        first = post(ana, "once", "key-1")
        again = post(ana, "once", "key-1")
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert "Idempotent-Replayed" not in first.headers
        other = post(ana, "twice", "key-2")
        # The listener saw "once" one time, then the next message.
        texts = [m["text"] for m in stream.wait_messages(2)]
        assert texts == ["once", "twice"]
    assert [m["text"] for m in ana.history()] == ["once", "twice"]
    assert other.json()["id"] > first.json()["id"]


def test_a_key_belongs_to_its_session(server: ChatServer, unique) -> None:
    # Another person sending the same key makes a message of their own and learns
    # nothing of the first one.
    ana, bo = server.visitor(unique("ana")), server.visitor(unique("bo"))
    mine = post(ana, "ana's words", "shared")
    theirs = post(bo, "bo's words", "shared")
    assert theirs.status_code == 201
    assert theirs.json()["text"] == "bo's words" and theirs.json()["id"] != mine.json()["id"]


def test_retries_racing_each_other_store_one_message(server: ChatServer, unique) -> None:
    # A page that resends while the first try is still on its way: the check and the
    # append are one step, so exactly one message exists whatever the interleaving.
    ana = server.visitor(unique("ana"))
    answers = []
    tries = [threading.Thread(target=lambda: answers.append(post(ana, "race", "same")))
             for _ in range(8)]
    for thread in tries:
        thread.start()
    for thread in tries:
        thread.join(15)
    assert [a.status_code for a in answers] == [201] * 8
    assert len({a.json()["id"] for a in answers}) == 1
    assert [m["text"] for m in ana.history()] == ["race"]


def test_private_messages_take_a_key_too(server: ChatServer, unique) -> None:
    ana, bo = server.visitor(unique("ana")), server.visitor(unique("bo"))
    path = f"/api/users/{bo.name}/messages"
    first = post(ana, "psst", "dm-key", path)
    again = post(ana, "psst", "dm-key", path)
    assert first.status_code == again.status_code == 201
    assert again.json()["id"] == first.json()["id"]
    conversation = bo.request("GET", f"/api/users/{ana.name}/messages").json()["messages"]
    assert [m["text"] for m in conversation] == ["psst"]


@pytest.mark.parametrize("key", ["", "x" * 256, "naïve", "tab\there"])
def test_a_bad_key_is_a_clear_400_and_stores_nothing(server: ChatServer, unique, key) -> None:
    ana = server.visitor(unique("ana"))
    answer = post(ana, "never", key)
    assert answer.status_code == 400, answer.text
    assert answer.json()["code"] == "invalid_idempotency_key"
    assert ana.history() == []


def test_the_key_survives_a_restart(start_server, mode, unique) -> None:
    # A retry can come after the server restarted (a worker replaced, a host rebooted).
    server = start_server(mode)
    ana = server.visitor(unique("ana"))
    first = post(ana, "before the restart", "k")
    server.restart()
    again = post(ana, "before the restart", "k")
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert len(ana.history()) == 1


def test_a_post_sent_again_after_a_mute_answers_the_message_it_made(
    start_server, mode, unique
) -> None:
    # The first try was stored, its answer lost; the host muted the poster meanwhile.
    token = "host-token-for-the-tests"
    server = start_server(mode, env={"CHATROOM_HOST_TOKEN": token})
    teacher = server.visitor()
    teacher.request("GET", f"/host?token={token}", allow_redirects=False)
    teacher.login(unique("teacher"))
    ana = server.visitor(unique("ana"))
    first = post(ana, "before the mute", "k1")
    mute = teacher.request("POST", f"/api/users/{ana.name}/mute", json={"minutes": 5})
    assert mute.status_code == 200
    again = post(ana, "before the mute", "k1")
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    refused = post(ana, "after the mute", "k2")
    assert refused.status_code == 403 and refused.json()["code"] == "muted"
    assert [m["text"] for m in ana.history()] == ["before the mute"]
