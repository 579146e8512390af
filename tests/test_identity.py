"""Identity that holds: server-side sessions, one name one look, private stays private."""

from __future__ import annotations

import pytest

from services import ChatServer


def _presence(stream) -> None:
    stream.wait_for(lambda fs: any(f.event == "presence" for f in fs))


def test_a_later_holder_of_a_name_reads_and_receives_nothing_private(
    server: ChatServer, unique
) -> None:
    alice, carol = server.visitor(unique("alice")), server.visitor(unique("carol"))
    first = alice.request("POST", f"/api/users/{carol.name}/messages", json={"text": "secret"})
    assert first.status_code == 201
    with carol.stream() as old_stream:
        _presence(old_stream)
        assert carol.request("POST", "/logout").status_code == 200
        old_stream.wait_for(lambda fs: old_stream.closed, timeout=5)
    # Anyone may now take the name, in any case: they see none of the conversation.
    impostor = server.visitor(carol.name.upper())
    assert impostor.request("GET", f"/api/users/{alice.name}/messages").json() == {
        "messages": []
    }
    with impostor.stream(last_event_id=0) as replay:
        _presence(replay)
        later = alice.request("POST", f"/api/users/{carol.name}/messages", json={"text": "hi"})
        assert later.status_code == 201
        dms = replay.wait_messages(1, kind="dm")
    assert [m["text"] for m in dms] == ["hi"]  # the new one only, never "secret"
    # Alice's own view of her conversations is hers to keep.
    with alice.stream(last_event_id=0) as mine:
        texts = [m["text"] for m in mine.wait_messages(2, kind="dm")]
    assert texts == ["secret", "hi"]


def test_a_copied_cookie_stops_working_at_logout(server: ChatServer, unique) -> None:
    owner = server.visitor(unique("cc"))
    thief = server.visitor()
    thief.http.cookies.update(owner.http.cookies)
    assert thief.post("as the owner").status_code == 201
    owner.request("POST", "/logout")
    answer = thief.post("still the owner?")
    assert answer.status_code == 401 and answer.json()["code"] == "login_required"
    assert thief.request("GET", "/api/session").status_code == 401
    with thief.stream() as stream:
        assert stream.status == 401


def test_logout_ends_every_stream_and_frees_the_name_at_once(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("lo"))
    tabs = [visitor.stream() for _ in range(3)]
    for tab in tabs:
        _presence(tab)
    visitor.request("POST", "/logout")
    for tab in tabs:
        tab.wait_for(lambda fs, tab=tab: tab.closed, timeout=5)
        assert tab.body.endswith(b"") and tab.closed
        tab.close()
    # Free at once, and not taken back by the ended streams a few seconds later.
    other = server.visitor()
    assert other.login(visitor.name).status_code == 200
    assert other.post("mine now").status_code == 201


def test_a_planted_cookie_never_becomes_the_victims_session(server: ChatServer, unique) -> None:
    attacker = server.visitor(unique("at"))
    planted = attacker.http.cookies["chatroom_session"]
    victim = server.visitor()
    answer = victim.request("POST", "/login", json={"username": unique("vi")},
                            headers={"Cookie": f"chatroom_session={planted}"})
    assert answer.status_code == 200
    issued = answer.cookies["chatroom_session"]
    assert issued != planted
    # The planted cookie is not the victim's session, and is not live any more either.
    assert attacker.request("GET", "/api/session").status_code == 401
    me = victim.request("GET", "/api/session", headers={"Cookie": f"chatroom_session={issued}"})
    assert me.json()["username"] == answer.json()["username"]


def test_every_login_is_a_new_session(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("nw"))
    before = dict(visitor.http.cookies)
    copy = server.visitor()
    copy.http.cookies.update(before)
    assert visitor.login(visitor.name).status_code == 200
    assert copy.post("old session").status_code == 401
    assert visitor.post("new session").status_code == 201


def test_look_alike_names_are_one_name(server: ChatServer, unique) -> None:
    base = unique("imp_bob")
    suffix = base[len("imp_bob"):]
    assert server.visitor().login(base).status_code == 200
    # Upper case; full-width letters; a Cyrillic о; "rn" for "m".
    for name in [base.upper(), "\uff49\uff4d\uff50_bob" + suffix, "imp_b\u043eb" + suffix,
                 "irnp_bob" + suffix]:
        answer = server.visitor().login(name)
        assert answer.status_code == 409, (name, answer.text)


@pytest.mark.parametrize("invisible", ["\u034f", "\ufe0f", "\u3164", "\u2800", "\u200b",
                                       "\u00ad", "\U000e0041"])
def test_invisible_characters_are_refused(server: ChatServer, unique, invisible) -> None:
    for name in [unique("inv") + invisible, invisible * 3]:
        answer = server.visitor().login(name)
        assert answer.status_code == 400, repr(name)
        assert answer.json()["code"] == "invalid_username"


def test_stacked_marks_are_refused(server: ChatServer) -> None:
    answer = server.visitor().login("Z\u0301\u0302\u0303algo")
    assert answer.status_code == 400


@pytest.mark.parametrize("name", ["José", "Jose\u0301", "王小明", "Zoë", "Ngọc", "Ана", "محمد",
                                  "ana lee"])
def test_ordinary_names_in_any_script_work(server: ChatServer, unique, name) -> None:
    suffix = unique("")
    visitor = server.visitor(name + suffix)
    assert visitor.name == name + suffix
    assert visitor.say("hello")["user"] == name + suffix


def test_precomposed_and_decomposed_are_one_name(server: ChatServer, unique) -> None:
    suffix = unique("")
    assert server.visitor().login("José" + suffix).status_code == 200
    assert server.visitor().login("Jose\u0301" + suffix).status_code == 409


def test_logout_on_one_server_ends_the_stream_on_another(start_server, unique) -> None:
    shared = {"CHATROOM_SECRET_KEY": "one secret for every machine"}
    first, second = start_server("redis", env=shared), start_server("redis", env=shared)
    visitor = first.visitor(unique("xs"))
    elsewhere = second.visitor()
    elsewhere.http.cookies.update(visitor.http.cookies)
    with elsewhere.stream() as stream:
        _presence(stream)
        visitor.request("POST", "/logout")
        stream.wait_for(lambda fs: stream.closed, timeout=5)
    assert second.visitor().login(visitor.name).status_code == 200


def test_a_later_holder_of_a_name_cannot_close_its_rooms(server: ChatServer, unique) -> None:
    owner = server.visitor(unique("ow"))
    room = unique("owned")
    assert owner.create_room(room).status_code == 201
    owner.request("POST", "/logout")
    successor = server.visitor(owner.name)
    refused = successor.request("DELETE", f"/api/rooms/{room}")
    assert refused.status_code == 403 and refused.json()["code"] == "not_room_creator"
