"""Private messages: both parties, every tab, their own history, replay."""

from __future__ import annotations

from services import ChatServer


def test_both_parties_and_all_their_tabs_receive_it(server: ChatServer, unique) -> None:
    ana, bo, cy = (server.visitor(unique(n)) for n in ("ana", "bo", "cy"))
    with ana.stream() as ana_tab, bo.stream() as bo_tab1, bo.stream() as bo_tab2, \
            cy.stream() as outsider:
        for stream in (ana_tab, bo_tab1, bo_tab2, outsider):
            stream.ready()
        answer = ana.request("POST", f"/api/users/{bo.name}/messages", json={"text": "psst"})
        assert answer.status_code == 201
        sent = answer.json()
        assert set(sent) == {"id", "from", "to", "text", "ts"}
        assert (sent["from"], sent["to"], sent["text"]) == (ana.name, bo.name, "psst")
        for stream in (ana_tab, bo_tab1, bo_tab2):
            assert stream.wait_messages(1, kind="dm") == [sent]
        ana.settle(outsider)
        assert outsider.messages("dm") == []


def test_the_conversation_has_its_own_history(server: ChatServer, unique) -> None:
    ana, bo, cy = (server.visitor(unique(n)) for n in ("ana", "bo", "cy"))
    one = ana.request("POST", f"/api/users/{bo.name}/messages", json={"text": "1"}).json()
    two = bo.request("POST", f"/api/users/{ana.name}/messages", json={"text": "2"}).json()
    ana.request("POST", f"/api/users/{cy.name}/messages", json={"text": "other"})
    for me, other in ((ana, bo), (bo, ana)):
        answer = me.request("GET", f"/api/users/{other.name}/messages")
        assert answer.json() == {"messages": [one, two]}
    assert ana.history() == []  # not in any room


def test_private_messages_are_replayed(server: ChatServer, unique) -> None:
    ana, bo = server.visitor(unique("ana")), server.visitor(unique("bo"))
    start = ana.say("origin")["id"]
    sent = [ana.request("POST", f"/api/users/{bo.name}/messages", json={"text": f"d{i}"}).json()
            for i in range(5)]
    with bo.stream(last_event_id=start) as stream:
        assert stream.wait_messages(5, kind="dm") == sent


def test_mistakes_get_clear_answers(server: ChatServer, unique) -> None:
    ana = server.visitor(unique("ana"))
    unknown = ana.request("POST", "/api/users/nobody-here/messages", json={"text": "hi"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_user"
    to_self = ana.request("POST", f"/api/users/{ana.name}/messages", json={"text": "hi"})
    assert to_self.status_code == 400
    bo = server.visitor(unique("bo"))
    empty = ana.request("POST", f"/api/users/{bo.name}/messages", json={"text": " "})
    assert empty.status_code == 400 and empty.json()["code"] == "empty_text"
    anonymous = server.visitor().request("POST", f"/api/users/{bo.name}/messages",
                                         json={"text": "hi"})
    assert anonymous.status_code == 401
    reading = server.visitor().request("GET", f"/api/users/{bo.name}/messages")
    assert reading.status_code == 401


def test_private_messages_cross_processes(start_server, unique) -> None:
    first, second = start_server("redis"), start_server("redis")
    ana, bo = first.visitor(unique("ana")), second.visitor(unique("bo"))
    with bo.stream() as stream:
        stream.ready()
        sent = ana.request("POST", f"/api/users/{bo.name}/messages", json={"text": "x"}).json()
        assert stream.wait_messages(1, kind="dm") == [sent]
