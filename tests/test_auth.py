"""Identity: a display name in a signed session cookie, held while its owner is online."""

from __future__ import annotations

import time

import requests

from services import ChatServer


def test_json_login_answers_the_name_and_sets_a_safe_cookie(server: ChatServer, unique) -> None:
    name = unique("ana")
    answer = server.visitor().request("POST", "/login", json={"username": f"  {name} "})
    assert answer.status_code == 200
    assert answer.json() == {"username": name}
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Expires=" in cookie  # survives a browser restart


def test_form_login_redirects_to_the_chat(server: ChatServer, unique) -> None:
    visitor = server.visitor()
    answer = visitor.request(
        "POST", "/login", data={"username": unique("bo")}, allow_redirects=False
    )
    assert answer.status_code in (302, 303)
    assert answer.headers["Location"].endswith("/")
    page = visitor.request("GET", "/")
    assert 'id="messages"' in page.text


def test_a_name_held_by_someone_online_is_refused(server: ChatServer, unique) -> None:
    name = unique("cy")
    server.visitor(name)
    for taken in (name, name.upper(), f" {name} "):
        answer = server.visitor().login(taken)
        assert answer.status_code == 409
        assert answer.json()["code"] == "name_taken"


def test_the_same_session_may_log_in_again(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("di"))
    assert visitor.login(visitor.name).status_code == 200


def test_logout_frees_the_name(server: ChatServer, unique) -> None:
    first = server.visitor(unique("ed"))
    assert first.request("POST", "/logout").status_code == 200
    assert server.visitor().login(first.name).status_code == 200
    answer = first.post("hello")
    assert answer.status_code == 401
    assert answer.json()["code"] == "login_required"


def test_form_login_with_a_taken_name_shows_the_form_again(server: ChatServer, unique) -> None:
    name = unique("fa")
    server.visitor(name)
    answer = server.visitor().request(
        "POST", "/login", data={"username": name}, headers={"Accept": "text/html"}
    )
    assert answer.status_code == 409
    assert "in use" in answer.text and "<form" in answer.text
    from_curl = server.visitor().request("POST", "/login", data={"username": name})
    assert from_curl.status_code == 409 and from_curl.json()["code"] == "name_taken"


def test_bad_names_are_refused_with_a_reason(server: ChatServer) -> None:
    visitor = server.visitor()
    for bad, code in [("", "invalid_username"), ("   ", "invalid_username"),
                      ("x" * 33, "invalid_username"), ("a\nb", "invalid_username"),
                      ("tab\there", "invalid_username"), (42, "invalid_username")]:
        answer = visitor.request("POST", "/login", json={"username": bad})
        assert answer.status_code == 400, bad
        assert answer.json()["code"] == code
        assert answer.json()["error"]
    assert visitor.login("ü" * 32).status_code == 200  # counted in code points


def test_a_forged_cookie_is_not_a_login(server: ChatServer) -> None:
    answer = requests.post(
        server.url + "/api/rooms/general/messages", json={"text": "hi"},
        cookies={"chatroom_session": "eyJ1c2VyIjoiYWRtaW4ifQ.forged.sig"}, timeout=5,
    )
    assert answer.status_code == 401


def test_a_cookie_one_character_off_a_valid_one_is_not_a_login(server: ChatServer, unique) -> None:
    visitor = server.visitor(unique("ha"))
    assert visitor.post("first").status_code == 201  # its cookie verified once already
    real = visitor.http.cookies["chatroom_session"]
    # (A middle character: the last one of base64 carries padding bits, and some
    # changes to it decode to the same signature.)
    swap = "A" if real[-5] != "A" else "B"
    for forged in (real[:-5] + swap + real[-4:], real + "x", real[1:]):
        answer = requests.post(
            server.url + "/api/rooms/general/messages", json={"text": "as someone else"},
            cookies={"chatroom_session": forged}, timeout=5,
        )
        assert answer.status_code == 401, forged
    assert visitor.post("still me").status_code == 201


def test_the_secret_is_made_on_first_run_and_kept(start_server, unique) -> None:
    server = start_server("memory")
    secret_file = server.data_dir / "secret_key"
    assert len(secret_file.read_text().strip()) >= 32
    assert secret_file.stat().st_mode & 0o077 == 0
    visitor = server.visitor(unique("gu"))
    server.restart()
    assert secret_file.exists()
    assert visitor.post("still me").status_code == 201


def test_secret_from_the_environment_is_used(start_server, unique) -> None:
    server = start_server("memory", env={"CHATROOM_SECRET_KEY": "s" * 40})
    assert not (server.data_dir / "secret_key").exists()
    assert server.visitor(unique("ha")).post("hi").status_code == 201


def test_a_name_is_held_while_online_and_freed_after(mode, start_server, unique) -> None:
    # The hold lasts CHATROOM_NAME_HOLD seconds (60 by default) after the last stream
    # closed, which the server notices at the next keep-alive write.
    server = start_server(mode, env={"CHATROOM_NAME_HOLD": "1", "CHATROOM_KEEPALIVE": "0.3"})
    first = server.visitor(unique("io"))
    with first.stream() as stream:
        opened = time.monotonic()
        # Longer than the hold: the open stream keeps renewing it.
        stream.wait_for(lambda fs: time.monotonic() - opened > 1.6)
        assert server.visitor().login(first.name).status_code == 409
    closed = time.monotonic()
    assert server.visitor().login(first.name).status_code == 409
    while server.visitor().login(first.name).status_code == 409:
        assert time.monotonic() - closed < 5, "the name was never freed"
        time.sleep(0.1)
    assert time.monotonic() - closed >= 1


def test_a_private_server_needs_a_login_to_listen_or_read(start_server, unique) -> None:
    server = start_server("memory", args=["--private"])
    anonymous = server.visitor()
    for path in ["/stream", "/api/rooms/general/messages", "/api/rooms/general/presence"]:
        answer = anonymous.request("GET", path, stream=True)
        assert answer.status_code == 401, path
        assert answer.json()["code"] == "login_required"
        answer.close()
    member = server.visitor(unique("pr"))
    member.say("members only")
    assert [m["text"] for m in member.history()] == ["members only"]
    with member.stream() as stream:
        assert stream.status == 200
