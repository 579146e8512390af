"""Several processes on one port (--workers, gunicorn) sharing one Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests
from test_metrics import scrape

from services import ChatServer, RedisServer, free_port, wait_for_port


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


def _fan_out(base: str, visitor_post, streams) -> None:
    for stream in streams:
        stream.ready()
    sent = visitor_post("to every worker")
    for stream in streams:
        assert stream.wait_messages(1)[0] == sent


def test_workers_share_one_chat(start_server, unique) -> None:
    server: ChatServer = start_server("redis", args=["--workers", "2"])
    assert "with 2 workers" in server.output()
    assert len(_children(server.proc.pid)) == 2
    ana = server.visitor(unique("ana"))
    streams = [server.stream() for _ in range(20)]
    try:
        _fan_out(server.url, ana.say, streams)
        deadline = time.monotonic() + 5
        while scrape(server)["chatroom_listeners"] != 20 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert scrape(server)["chatroom_listeners"] == 20  # summed over both workers
    finally:
        for stream in streams:
            stream.close()
    # Names are held across workers, and replay works whichever worker answers.
    assert server.visitor().login(ana.name).status_code == 409
    first = ana.say("origin")["id"]
    missed = [ana.say(f"m{i}") for i in range(10)]
    for _ in range(6):
        with server.stream(last_event_id=first) as stream:
            assert stream.wait_messages(10) == missed


def test_a_worker_that_dies_is_replaced(start_server) -> None:
    server: ChatServer = start_server("redis", args=["--workers", "2"])
    victim = _children(server.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        kids = _children(server.proc.pid)
        if len(kids) == 2 and victim not in kids:
            break
        time.sleep(0.1)
    assert len(kids) == 2 and victim not in kids
    assert server.health()["status"] == "ok"


def test_workers_without_redis_are_refused(tmp_path: Path) -> None:
    for broker in (["--memory"], ["--redis", f"redis://127.0.0.1:{free_port()}/0"]):
        done = subprocess.run(
            [sys.executable, "-m", "chatroom", "--workers", "2", "--no-browser",
             "--data-dir", str(tmp_path), "--port", str(free_port()), *broker],
            capture_output=True, text=True, timeout=30,
        )
        assert done.returncode == 2
        assert "--workers needs Redis" in done.stderr
        assert "Traceback" not in done.stderr


def test_gunicorn_with_two_workers(redis_server: RedisServer, tmp_path: Path, unique) -> None:
    if redis_server.proc is None:
        redis_server.start()
    port = free_port()
    env = {**os.environ, "CHATROOM_REDIS_URL": redis_server.url,
           "CHATROOM_DATA_DIR": str(tmp_path), "CHATROOM_RATE_LIMIT": "off",
           # Closed streams are noticed at the next keep-alive, and gunicorn's graceful
           # stop waits for them.
           "CHATROOM_KEEPALIVE": "0.5"}
    # The hand-over ends each stream's request with a connection reset, which gunicorn
    # must take quietly (see chatroom.handover): its output is read at the end.
    log = tmp_path / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-k", "gevent", "-w", "2", "-b",
         f"127.0.0.1:{port}", "chatroom:create_app()"],
        env=env, stdout=subprocess.DEVNULL, stderr=log.open("wb"),
    )
    try:
        wait_for_port(port, timeout=20)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 10
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(_children(proc.pid)) == 2
        session = requests.Session()
        session.post(base + "/login", json={"username": unique("gu")}, timeout=5)

        def post(text: str) -> dict:
            answer = session.post(base + "/api/rooms/general/messages", json={"text": text},
                                  timeout=5)
            assert answer.status_code == 201
            return answer.json()

        from sse_client import SSEStream

        streams = [SSEStream(base + "/stream") for _ in range(20)]
        try:
            _fan_out(base, post, streams)
        finally:
            for stream in streams:
                stream.close()
    finally:
        proc.terminate()
        proc.wait(10)
    output = log.read_text(errors="replace")
    assert "Booting worker" in output  # it is gunicorn's output indeed
    assert "Traceback" not in output and "Error" not in output, output


def test_a_stop_loses_nothing_acknowledged(start_server, mode, unique) -> None:
    import threading

    server = start_server(mode)
    ana = server.visitor(unique("ana"))
    acknowledged: list[dict] = []
    stop = threading.Event()

    def post() -> None:
        i = 0
        while not stop.is_set() and i < 900:  # all of it fits in one page of history
            try:
                answer = ana.post(f"p{i}")
            except requests.RequestException:
                break
            if answer.status_code == 201:
                acknowledged.append(answer.json())
            i += 1

    thread = threading.Thread(target=post)
    with server.stream() as listener:
        listener.ready()
        thread.start()
        listener.wait_messages(20)  # the stop comes in the middle of the posting
        took = server.stop(signal.SIGINT)
        stop.set()
        thread.join()
        listener.wait_closed(1)
    assert took < 5
    server.start()
    assert len(acknowledged) > 10
    stored = {m["id"] for m in ana.history(limit=1000)}
    assert {m["id"] for m in acknowledged} <= stored
