"""Rooms: general always exists; anyone logged in creates, the creator closes."""

from __future__ import annotations

from services import ChatServer


def test_general_always_exists(server: ChatServer) -> None:
    rooms = server.visitor().request("GET", "/api/rooms").json()["rooms"]
    assert rooms[0] == {"name": "general", "online": 0, "created_by": None,
                        "read_only": False, "slow_mode": 0}


def test_create_list_and_conflict(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("ro"))
    name = unique("maths-")
    answer = visitor.create_room(name.upper())  # case-folded
    assert answer.status_code == 201
    assert answer.json() == {"name": name, "online": 0, "created_by": visitor.name,
                             "read_only": False, "slow_mode": 0}
    listed = visitor.request("GET", "/api/rooms").json()["rooms"]
    assert [r["name"] for r in listed] == ["general", name]
    again = server.visitor(unique("ri")).create_room(name)
    assert again.status_code == 409
    assert again.json()["code"] == "room_exists"


def test_room_names_are_checked(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("ra"))
    for bad in ["", "has space", "x" * 33, "smile😀", "a/b", "a.b", "一 班", None, 5]:
        answer = visitor.request("POST", "/api/rooms", json={"name": bad})
        assert answer.status_code == 400, bad
        assert answer.json()["code"] == "invalid_room_name"


def test_creating_needs_a_login(server: ChatServer) -> None:
    answer = server.visitor().create_room("nobody")
    assert answer.status_code == 401
    assert answer.json()["code"] == "login_required"


def test_only_the_creator_closes_and_general_never(server: ChatServer, unique) -> None:
    owner, other = server.visitor(unique("ow")), server.visitor(unique("ot"))
    name = unique("r")
    owner.create_room(name)
    refused = other.request("DELETE", f"/api/rooms/{name}")
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_room_creator"
    general = owner.request("DELETE", "/api/rooms/general")
    assert general.status_code == 403
    assert owner.request("DELETE", f"/api/rooms/{name}").status_code == 200
    assert owner.request("DELETE", f"/api/rooms/{name}").status_code == 404
    assert owner.post("hello", room=name).status_code == 404


def test_closing_tells_everyone_and_moves_listeners_to_general(server: ChatServer, unique) -> None:
    owner = server.visitor(unique("cl"))
    name = unique("closing")
    owner.create_room(name)
    with owner.stream(f"room={name}") as in_room, server.stream() as elsewhere:
        in_room.ready()
        elsewhere.ready()
        owner.request("DELETE", f"/api/rooms/{name}")
        for stream in (in_room, elsewhere):
            closed = stream.wait_messages(1, kind="room_closed")
            assert closed[0]["room"] == name and closed[0]["by"] == owner.name
        # The room's listener now hears general.
        owner.say("after the close")
        assert in_room.wait_messages(1)[0]["text"] == "after the close"


def test_every_stream_hears_of_new_rooms(server: ChatServer, unique) -> None:
    creator = server.visitor(unique("cr"))
    with server.stream() as stream:
        stream.ready()
        name = unique("new")
        creator.create_room(name)
        created = stream.wait_messages(1, kind="room_created")
    assert created[0]["room"] == name and created[0]["by"] == creator.name
    assert created[0]["id"] > 0
