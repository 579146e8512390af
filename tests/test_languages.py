"""English and Simplified Chinese: pages, console, room names, and a complete catalog."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from services import ChatServer

ROOT = Path(__file__).resolve().parent.parent
PO = ROOT / "chatroom" / "locale" / "zh_Hans" / "LC_MESSAGES" / "chatroom.po"
MO = PO.with_suffix(".mo")


def test_every_text_is_in_the_catalog_and_translated(tmp_path: Path) -> None:
    # Extracted afresh from the code: a text added without a translation fails here.
    pot = tmp_path / "fresh.pot"
    subprocess.run(
        [sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg",
         "-k", "_", "-k", "t", "-k", "gettext", "--no-location", "-o", str(pot), "."],
        cwd=ROOT, check=True, capture_output=True, timeout=120,
    )
    wanted = {m.id for m in read_po(pot.open("rb")) if m.id}
    catalog = read_po(PO.open("rb"))
    translated = {m.id: m.string for m in catalog if m.id}
    assert len(wanted) > 150
    missing = sorted(wanted - set(translated))
    assert missing == [], f"not in the catalog (run scripts/translations): {missing}"
    empty = sorted(i for i in wanted if not translated[i] or catalog[i].fuzzy)
    assert empty == [], f"not translated: {empty}"
    # The compiled file the package ships says the same as the .po.
    compiled = {m.id: m.string for m in read_mo(MO.open("rb")) if m.id}
    assert {i: translated[i] for i in wanted} == {i: compiled.get(i) for i in wanted}


def test_placeholders_survive_translation() -> None:
    import re

    for message in read_po(PO.open("rb")):
        if message.id:
            fields = sorted(re.findall(r"\{[^}]*\}|%\(\w+\)s", message.id))
            assert fields == sorted(re.findall(r"\{[^}]*\}|%\(\w+\)s", message.string)), message.id


@pytest.mark.parametrize(("accept", "lang", "word"), [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh-Hans", "加入"),
    ("zh-TW", "zh-Hans", "加入"),
    ("en-GB,en;q=0.9", "en", "Join"),
    ("fr-FR", "en", "Join"),
])
def test_pages_follow_accept_language(start_server, accept, lang, word) -> None:
    server = start_server("memory")
    page = requests.get(server.url + "/", headers={"Accept-Language": accept}, timeout=5)
    assert f'<html lang="{lang}">' in page.text
    assert word in page.text


def test_the_switch_is_kept_in_a_cookie(start_server) -> None:
    server = start_server("memory")
    chosen = requests.get(server.url + "/inspect", headers={"Accept-Language": "en"},
                          cookies={"chatroom_lang": "zh-Hans"}, timeout=5)
    assert '<html lang="zh-Hans">' in chosen.text and "线路视图" in chosen.text
    stats = requests.get(server.url + "/stats", cookies={"chatroom_lang": "zh-Hans"}, timeout=5)
    assert "实时统计" in stats.text
    missing = requests.get(server.url + "/nope", headers={"Accept": "text/html"},
                           cookies={"chatroom_lang": "zh-Hans"}, timeout=5)
    assert "返回聊天" in missing.text


def test_a_chinese_name_picker_words_its_errors_in_chinese(start_server, unique) -> None:
    server = start_server("memory")
    name = unique("王")
    server.visitor(name)
    taken = requests.post(server.url + "/login", data={"username": name},
                          headers={"Accept": "text/html", "Accept-Language": "zh-CN"}, timeout=5)
    assert taken.status_code == 409 and "这个名字正被在线的人使用" in taken.text


@pytest.mark.parametrize("mode", ["memory", "redis"])
def test_a_room_named_in_chinese_end_to_end(start_server, mode, unique) -> None:
    server = start_server(mode)
    owner = server.visitor(unique("老师"))
    room = f"一班{unique('')}"
    created = owner.create_room(room)
    assert created.status_code == 201 and created.json()["name"] == room
    assert owner.create_room("Café" + unique("")).json()["name"].startswith("café")
    with owner.stream(f"room={requests.utils.quote(room)}") as stream:
        stream.wait_for(lambda fs: any(f.event == "presence" for f in fs))
        sent = owner.say("大家好", room=room)
        assert stream.wait_messages(1) == [sent]
    assert owner.history(room=room) == [sent]
    listed = [r["name"] for r in owner.request("GET", "/api/rooms").json()["rooms"]]
    assert room in listed
    assert owner.request("DELETE", f"/api/rooms/{requests.utils.quote(room)}").status_code == 200


def _console(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith(("CHATROOM_", "LC_", "LANG", "PYTHONIOENCODING"))}
    return subprocess.run([sys.executable, *args], capture_output=True, timeout=60,
                          env={**clean, **env})


START_UP = (
    "-c",
    "from chatroom.config import Config\n"
    "from chatroom.startup import Ready\n"
    "from chatroom.startup import start_up_text\n"
    "print(start_up_text(Ready('http://localhost:5000/', ['http://192.168.1.5:5000/'],"
    " 'the in-process broker', 1, 900), Config(host_token='t'), ''))\n",
)


@pytest.mark.parametrize(("env", "expect"), [
    ({"CHATROOM_LANG": "zh-Hans", "PYTHONIOENCODING": "utf-8"}, "正在运行"),
    ({"LANG": "zh_CN.UTF-8", "PYTHONIOENCODING": "utf-8"}, "正在运行"),
    ({"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US.UTF-8", "PYTHONIOENCODING": "utf-8"}, "正在运行"),
    ({"LANG": "C", "PYTHONIOENCODING": "utf-8"}, "is running"),
    ({"LANG": "zh_CN.UTF-8", "CHATROOM_LANG": "en", "PYTHONIOENCODING": "utf-8"}, "is running"),
])
def test_the_console_speaks_the_systems_language(env, expect) -> None:
    done = _console(env, *START_UP)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout.decode("utf-8")


@pytest.mark.parametrize("encoding", ["ascii", "gbk"])
def test_a_console_that_cannot_show_it_gets_a_fallback(encoding) -> None:
    done = _console({"LANG": "zh_CN.UTF-8", "PYTHONIOENCODING": encoding}, *START_UP)
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode(encoding)
    assert "Traceback" not in done.stderr.decode(encoding, "replace")
    assert "http://192.168.1.5:5000/" in text
    if encoding == "ascii":
        # No Chinese and no QR blocks on an ASCII console: English, and a sentence.
        assert "is running" in text and "cannot show the QR code" in text
    else:
        assert "正在运行" in text  # GBK shows Chinese


@pytest.mark.parametrize(("env", "sentence"), [
    ({"CHATROOM_LANG": "zh-Hans", "PYTHONIOENCODING": "utf-8"}, "CHATROOM_PORT 必须是整数"),
    ({"LANG": "C", "PYTHONIOENCODING": "ascii"}, "CHATROOM_PORT must be a whole number"),
    ({"LANG": "zh_CN.UTF-8", "PYTHONIOENCODING": "ascii"}, "CHATROOM_PORT must be a whole number"),
])
def test_fatal_sentences_in_each_language(env, sentence) -> None:
    done = _console({**env, "CHATROOM_PORT": "x"}, "-m", "chatroom", "--no-browser")
    assert done.returncode == 2
    err = done.stderr.decode("utf-8", "replace")
    assert sentence in err and "Traceback" not in err


def test_a_started_server_speaks_chinese_on_the_console(tmp_path: Path) -> None:
    server = ChatServer("memory", tmp_path / "data",
                        env={"CHATROOM_LANG": "zh-Hans", "PYTHONIOENCODING": "utf-8"})
    server.start()
    try:
        assert "正在运行" in server.output() and "在这台电脑上" in server.output()
    finally:
        server.stop()
    assert "已停止" in server.output()


def test_the_error_page_speaks_chinese(start_server) -> None:
    server = start_server("memory")
    page = requests.get(server.url + "/nowhere", timeout=5,
                        headers={"Accept": "text/html", "Accept-Language": "zh-CN"})
    assert page.status_code == 404 and "这个地址上什么也没有" in page.text
