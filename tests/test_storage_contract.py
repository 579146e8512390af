"""The storage contract, in process: every method of Storage, over SQLite and over Redis.

The same tests run against both implementations; a difference between them is a bug in
one. Redis is the suite's real redis-server, emptied for each test.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from chatroom.config import RateLimit
from chatroom.events import Draft, Event, Expected
from chatroom.storage import GENERAL, Room, Session, Stale, Storage
from chatroom.storage.redis import RedisStorage
from chatroom.storage.sqlite import SqliteStorage

from services import RedisServer


@pytest.fixture(params=["sqlite", "redis"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "sqlite":
        store: Storage = SqliteStorage(tmp_path / "chat.sqlite3", history=5)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        if server.proc is None:
            server.start()
        server.flush()
        store = RedisStorage(redis.Redis.from_url(server.url), history=5)
    yield store
    store.close()


def message(text: str, channel: str = "room:general", key: str = "") -> Draft:
    return Draft.of(channel, "message", room="general", user="ana", text=text).guarded(key)


def texts(events: list[Event]) -> list[str]:
    return [e.payload()["text"] for e in events]


def test_append_gives_growing_ids_in_one_epoch(storage: Storage) -> None:
    first, fresh = storage.append(message("one"))
    second, _ = storage.append(message("two"))
    assert fresh and second.id > first.id and first.epoch == second.epoch
    assert storage.position() == (first.epoch, second.id) and storage.last_id() == second.id


def test_a_record_round_trips(storage: Storage) -> None:
    event, _ = storage.append(message("tab\tand\nnewline \u00e9 \U0001f600"))
    again = Event.from_record(event.to_record())
    assert (again.id, again.channel, again.kind, again.data, again.frame) == (
        event.id, event.channel, event.kind, event.data, event.frame)
    assert storage.history("room:general", 10)[0].data == event.data


def test_an_idempotency_key_makes_one_event(storage: Storage) -> None:
    first, fresh = storage.append(message("once", key="k1"))
    again, fresh_again = storage.append(message("once, sent again", key="k1"))
    assert fresh and not fresh_again
    assert again.id == first.id and again.data == first.data
    assert texts(storage.history("room:general", 10)) == ["once"]


def test_history_keeps_the_newest_and_pages_back(storage: Storage) -> None:
    # At least the retention (5 here) is kept; older events go, at the latest, within a
    # trim's batch of appends (SQLite trims every 32).
    ids = [storage.append(message(f"m{i}"))[0].id for i in range(70)]
    assert texts(storage.history("room:general", 5)) == [f"m{i}" for i in range(65, 70)]
    assert len(storage.history("room:general", 1000)) <= 5 + 32
    assert texts(storage.history("room:general", 2, before=ids[68])) == ["m66", "m67"]


def test_since_merges_channels_in_id_order(storage: Storage) -> None:
    a = storage.append(message("a", "room:x"))[0]
    storage.append(message("b", "room:y"))
    storage.append(message("c", "room:x"))
    dm = Draft.of("dm:s1\x1fs2", "dm", also=("user:s1", "user:s2"), text="d")
    storage.append(dm)
    got = storage.since(["room:x", "room:y", "user:s1"], a.id)
    assert [e.payload()["text"] for e in got] == ["b", "c", "d"]


def test_rooms(storage: Storage) -> None:
    assert storage.get_room(GENERAL) is not None
    assert storage.create_room(Room("maths", "ana", "s1"))
    assert not storage.create_room(Room("maths", "bo", "s2"))
    assert storage.get_room("maths") == Room("maths", "ana", "s1")
    assert {r.name for r in storage.list_rooms()} == {GENERAL, "maths"}
    assert storage.count_rooms() == 2
    storage.append(message("in maths", "room:maths"))
    storage.delete_room("maths")
    assert storage.get_room("maths") is None and storage.history("room:maths", 10) == []


def test_names_are_held_by_one_session(storage: Storage) -> None:
    assert storage.claim_name("ana", "s1", 60)
    assert storage.claim_name("ana", "s1", 60)  # its own again
    assert not storage.claim_name("ana", "s2", 60)
    storage.renew_name("ana", "s2", 60)  # not its holder: changes nothing
    storage.release_name("ana", "s2")
    assert not storage.claim_name("ana", "s2", 60)
    storage.release_name("ana", "s1")
    assert storage.claim_name("ana", "s2", 60)


def test_a_hold_made_shorter_ends_sooner(storage: Storage) -> None:
    assert storage.claim_name("ana", "s1", 60)
    assert storage.claim_name("ana", "s1", 60)  # renewed (with SQLite, in memory only)
    storage.renew_name("ana", "s1", 0.3)  # the countdown after the last stream closed
    shortened = time.monotonic()
    assert not storage.claim_name("ana", "s2", 60)
    while not storage.claim_name("ana", "s2", 60):
        assert time.monotonic() - shortened < 5, "the shortened hold never ended"
        time.sleep(0.05)
    assert time.monotonic() - shortened >= 0.25
    assert not storage.claim_name("ana", "s1", 60)


def test_sessions(storage: Storage) -> None:
    session = Session("s1", "Ana", False, 1234, "10.0.0.5")
    storage.claim_name("ana", "s1", 60)
    storage.start_session(session, "ana", 3600)
    assert storage.get_session("s1") == session
    assert storage.find_user("ana") == ("Ana", "s1")
    assert storage.make_host("s1") and storage.get_session("s1").host
    assert not storage.make_host("nobody")
    ended = storage.end_session("s1")
    assert ended is not None and ended.name == "Ana"
    assert storage.get_session("s1") is None and storage.find_user("ana") is None
    assert storage.claim_name("ana", "s2", 60)  # the name is free at once
    assert storage.end_session("s1") is None


def test_deleting_and_clearing_events(storage: Storage) -> None:
    kept = storage.append(message("kept"))[0]
    gone = storage.append(message("gone"))[0]
    assert storage.delete_event("room:general", gone.id).data == gone.data
    assert storage.delete_event("room:general", gone.id) is None
    assert [e.id for e in storage.history("room:general", 10)] == [kept.id]
    storage.clear_channel("room:general")
    assert storage.history("room:general", 10) == []


def test_settings(storage: Storage) -> None:
    storage.set_setting("mute:ana", "123")
    storage.set_setting("mute:bo", "456")
    storage.set_setting("read_only:general", "1")
    assert storage.get_settings(["mute:ana", "missing"]) == ["123", None]
    assert storage.settings_with_prefix("mute:") == {"mute:ana": "123", "mute:bo": "456"}
    storage.set_setting("mute:ana", None)
    assert storage.get_settings(["mute:ana"]) == [None]
    storage.set_setting("missing", "now here")  # read as absent above
    assert storage.get_settings(["missing", "mute:bo"]) == ["now here", "456"]


def test_what_was_read_changes_with_every_write(storage: Storage) -> None:
    storage.create_room(Room("art", "ana", "s1"))
    assert storage.get_room("art").creator == "s1"
    storage.delete_room("art")
    storage.create_room(Room("art", "bo", "s2"))
    assert storage.get_room("art") == Room("art", "bo", "s2")
    brief = Session("s3", "Cy")
    storage.start_session(brief, "cy", 0.5)
    assert storage.get_session("s3") == brief
    deadline = time.monotonic() + 5
    while storage.get_session("s3") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert storage.get_session("s3") is None  # it expired while it was remembered
    storage.start_session(Session("s3", "Cy again"), "cy", 3600)
    assert storage.get_session("s3").name == "Cy again"


def test_rate_windows(storage: Storage) -> None:
    limit = RateLimit(2, 30)
    assert storage.rate_hit("ana", limit) == 0 and storage.rate_hit("ana", limit) == 0
    wait = storage.rate_hit("ana", limit)
    assert 0 < wait <= 30
    assert storage.rate_hit("bo", limit) == 0


def test_presence(storage: Storage) -> None:
    assert storage.presence_add("general", "ana", "p1", 30)  # came online
    assert not storage.presence_add("general", "ana", "p2", 30)  # a second tab
    assert storage.presence_add("general", "bo", "p1", 30)
    assert storage.online("general") == ["ana", "bo"]
    assert storage.online_counts(["general", "empty"]) == {"general": 2, "empty": 0}
    assert not storage.presence_remove("general", "ana", "p1")  # still on through p2
    assert storage.presence_remove("general", "ana", "p2")  # gone
    storage.presence_refresh([("general", "bo")], "p1", 30)
    assert storage.presence_expire() == []
    assert storage.online("general") == ["bo"]
    assert storage.failure is None


def test_a_post_checks_its_name_and_rate_windows_with_the_append(storage: Storage) -> None:
    from chatroom.storage import NameTaken, RateExceeded

    storage.claim_name("ana", "s1", 60)
    windows = (("post:sess:s2", 5, 30.0), ("post:addr:10.0.0.9", 2, 30.0))
    with pytest.raises(NameTaken):  # s2 posting under the name s1 holds
        storage.append(message("not mine").guarded(holds=("ana", "s2", 60), counts=windows))
    assert storage.history("room:general", 10) == []
    storage.release_name("ana", "s1")
    mine = message("mine").guarded(holds=("ana", "s2", 60), counts=windows)
    assert storage.append(mine)[1] and storage.append(mine)[1]
    with pytest.raises(RateExceeded) as caught:  # the address's window: 2 per 30 s
        storage.append(mine)
    assert caught.value.index == 1 and 0 < caught.value.wait <= 30
    assert not storage.claim_name("ana", "s1", 60)  # the posts renewed s2's hold
    assert texts(storage.history("room:general", 10)) == ["mine", "mine"]
    # A repeat of a key answers the first post before any window counts it.
    keyed = message("once", key="k").guarded(key="k", counts=(("post:sess:s3", 1, 30.0),))
    first, _ = storage.append(keyed)
    again, fresh = storage.append(keyed)
    assert again.id == first.id and not fresh


def test_a_post_is_decided_on_what_was_read_and_stored_only_if_it_still_holds(
    storage: Storage,
) -> None:
    storage.start_session(Session("s1", "Ana"), "ana", 3600)
    storage.set_setting("mute:s1", "99")
    storage.create_room(Room("maths", "ana", "s1"))
    keys = ["mute:s1", "ban:x"]
    assert storage.recall("s1", keys, "maths") == (
        Session("s1", "Ana"), ["99", None], Room("maths", "ana", "s1"))
    assert storage.recall("gone", ["mute:s1"]) == (None, ["99"], Room(GENERAL, None))
    assert storage.recall("s1", [], "nowhere")[2] is None
    expected = Expected("s1", "Ana", False, (("mute:s1", "99"), ("ban:x", None)), "maths")
    posted = message("decided").guarded(expects=expected)
    storage.append(posted)
    changes = [
        lambda: storage.set_setting("ban:x", "1"),
        lambda: storage.set_setting("mute:s1", None),
        lambda: storage.delete_room("maths"),
        lambda: storage.make_host("s1"),
        lambda: storage.end_session("s1"),
    ]
    for change, undo in zip(changes, [
        lambda: storage.set_setting("ban:x", None),
        lambda: storage.set_setting("mute:s1", "99"),
        lambda: storage.create_room(Room("maths", "ana", "s1")),
        None, None,
    ], strict=True):
        change()
        with pytest.raises(Stale):
            storage.append(posted.guarded(expects=expected, counts=(("post:sess:s1", 1, 30.0),)))
        if undo is not None:
            undo()
            storage.append(posted)
    # Nothing a refused append would have stored or counted: the window still has room.
    assert texts(storage.history("room:general", 10)) == ["decided"] * 4
    assert storage.rate_hit("post:sess:s1", RateLimit(1, 30)) == 0
    # What changed is read again, not answered from what a process remembered.
    assert storage.recall("s1", keys, "maths")[:2] == (None, ["99", None])


def test_what_a_key_stored_can_be_read_back(storage: Storage) -> None:
    made, _ = storage.append(message("kept", key="k1"))
    found = storage.posted("k1")
    assert found is not None and (found.id, found.data) == (made.id, made.data)
    assert storage.posted("never") is None
