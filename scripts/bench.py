"""Benchmark a chatroom server: deliveries per second, delivery latency, memory per listener.

    python scripts/bench.py --listeners 1000 --mode memory --saturate
    python scripts/bench.py --listeners 1000 --mode redis --rate 20
    python scripts/bench.py --listeners 10000 --mode memory --rate 2 --duration 5
    python scripts/bench.py --listeners 30000 --mode redis --workers 3 --generators 2 --rate 2

It starts the server itself (`--mode memory` or `--mode redis`, Redis on a free port) on
CPU 0 and runs its own load client on CPU 1: one process, one epoll loop, raw sockets,
frames counted with bytes.count, so that the server, not the client, is the limit
(Locust's clients are far too slow for this). Listeners open `/stream`; posters send
`POST /api/rooms/general/messages` as fast as they can (`--saturate`, `--posters` keep-alive
connections) or at `--rate` messages per second. Each text carries its send time; a sample
of listeners reads it back for the latency (post to event received). Memory per listener
is the server's resident memory growth (all its processes, with `--workers`) while the
listeners connect, divided by their number. With `--generators N` the listeners are spread
over N load processes (one process may open only so many sockets); the first one posts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARK = re.compile(rb"bm(\d+)_")
FRAME = b"event: message"
SAMPLED = 20
READ_SIZE = 65536


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and of its child processes (workers), in KiB."""
    total = 0
    for proc in Path("/proc").iterdir():
        try:
            stat = (proc / "stat").read_text()
            if not (proc.name == str(pid) or stat[stat.rindex(")") + 2:].split()[1] == str(pid)):
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except (OSError, ValueError):
            continue  # not a process, or it ended meanwhile
    return total


def pin(cpu: int) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {cpu})


def wait_http(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                if b" 200 " in s.recv(4096):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the server did not start")


def start_server(
    mode: str, work: Path, workers: int = 1
) -> tuple[subprocess.Popen, int, list[subprocess.Popen]]:
    port, extra, helpers = free_port(), [], []
    if mode == "redis":
        redis_port = free_port()
        helpers.append(subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port),
             "--save", "", "--appendonly", "no", "--maxclients", "20000"],
            stdout=subprocess.DEVNULL))
        time.sleep(0.5)
        extra = ["--redis", f"redis://127.0.0.1:{redis_port}/0"]
        if workers > 1:
            extra += ["--workers", str(workers)]
    elif mode == "flask-reference":
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "bench_reference.py"), str(port)],
            cwd=ROOT, stdout=subprocess.DEVNULL, preexec_fn=lambda: pin(0),
        )
        wait_http(port)
        return server, port, helpers
    else:
        extra = ["--memory"]
    env = {**os.environ, "CHATROOM_RATE_LIMIT": "off"}
    server = subprocess.Popen(
        [sys.executable, "-m", "chatroom", "--host", "127.0.0.1", "--port", str(port),
         "--no-browser", "--data-dir", str(work), *extra],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        preexec_fn=lambda: pin(0),
    )
    wait_http(port)
    return server, port, helpers


# The server answers only to its own names (its Host check): the address it is reached at.
HOST = "127.0.0.1"


def request(method: str, path: str, body: bytes = b"", cookie: str = "") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    if body:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def login(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(request("POST", "/login", json.dumps({"username": "bench"}).encode()))
        head = s.recv(65536).decode("latin-1")
    return re.search(r"Set-Cookie: ([^;]+)", head).group(1)


# Linux: a bound socket takes its port at connect(), from the ports free for that
# destination, not at bind() from those free for every destination.
IP_BIND_ADDRESS_NO_PORT = 24


class Listener:
    def __init__(self, port: int, sampled: bool, source: str = "127.0.0.1") -> None:
        self.sock = socket.socket()
        if source != "127.0.0.1":
            self.sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            self.sock.bind((source, 0))
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.sock.sendall(request("GET", "/stream?room=general"))
        self.sampled = sampled
        self.count = 0
        self.tail = b""
        self.first = b""

    def feed(self, data: bytes, latencies: list[float]) -> None:
        """Count the message frames in ``data`` (C-speed), and sample their latency."""
        if not self.first:
            self.first = data
        self.count += data.count(FRAME)
        # A marker split across two reads is counted where the two halves meet.
        self.count += (self.tail + data[: len(FRAME) - 1]).count(FRAME)
        self.tail = data[-(len(FRAME) - 1):]
        if self.sampled:
            now = time.monotonic_ns() // 1000
            latencies.extend((now - int(m.group(1))) / 1000 for m in MARK.finditer(data))


def open_listeners(
    port: int, count: int, sampled: int, epoll: select.epoll, source: str = "127.0.0.1"
) -> dict[int, Listener]:
    """Open ``count`` streams from ``source`` (the first ``sampled`` measure latency)."""
    by_fd: dict[int, Listener] = {}
    for i in range(count):
        listener = Listener(port, i < sampled, source)
        by_fd[listener.sock.fileno()] = listener
        epoll.register(listener.sock.fileno(), select.EPOLLIN)
        if i % 500 == 499:
            time.sleep(0.05)  # let the server accept
    return by_fd


def pump_once(epoll: select.epoll, by_fd: dict[int, Listener], latencies: list[float],
              timeout: float) -> list[int]:
    """Read what arrived within ``timeout``; return the ready descriptors not listeners'."""
    others = []
    for fd, _ in epoll.poll(timeout):
        listener = by_fd.get(fd)
        if listener is None:
            others.append(fd)
            continue
        try:
            data = listener.sock.recv(READ_SIZE)
        except BlockingIOError:
            continue
        if not data:
            epoll.unregister(fd)
            continue
        listener.feed(data, latencies)
    return others


def wait_connected(epoll: select.epoll, by_fd: dict[int, Listener], latencies: list[float]) -> None:
    """Read until every stream has sent its first bytes (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(not x.tail for x in by_fd.values()):
        pump_once(epoll, by_fd, latencies, 0.05)


def listen_only(port: int, count: int, source: str) -> int:
    """A further load process (``--generators``): streams only, counted, no latency.

    Prints "ready" once every stream is connected, then reads the number of posts sent
    from stdin, reads until each stream has them all (15 s at most), and prints its
    counts as JSON.
    """
    pin(1)
    epoll = select.epoll()
    by_fd = open_listeners(port, count, 0, epoll, source)
    wait_connected(epoll, by_fd, [])
    print("ready", flush=True)
    epoll.register(sys.stdin.fileno(), select.EPOLLIN)
    sent = None
    while sent is None:
        if sys.stdin.fileno() in pump_once(epoll, by_fd, [], 0.05):
            sent = int(sys.stdin.readline())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and any(x.count < sent for x in by_fd.values()):
        pump_once(epoll, by_fd, [], 0.05)
    counts = [x.count for x in by_fd.values()]
    print(json.dumps({"listeners": count, "got": sum(counts),
                      "short": sum(c < sent for c in counts)}), flush=True)
    return 0


def run(args: argparse.Namespace, port: int, server_pid: int | None) -> dict:
    pin(1)
    cookie = login(port)
    before = rss_kib(server_pid) if server_pid else 0
    share = args.listeners // args.generators
    # Each load process connects from an address of its own (127.0.0.2, …: loopback, as
    # if from other machines), so that none runs out of ports to connect from.
    helpers = [subprocess.Popen(
        [sys.executable, __file__, "--listen-only", "--port", str(port), "--listeners",
         str(share), "--source", f"127.0.0.{2 + i}"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    ) for i in range(args.generators - 1)]
    epoll = select.epoll()
    by_fd = open_listeners(port, args.listeners - share * len(helpers), SAMPLED, epoll)
    listeners = list(by_fd.values())
    latencies: list[float] = []

    def pump(timeout: float) -> None:
        for fd in pump_once(epoll, by_fd, latencies, timeout):
            epoll.unregister(fd)  # a poster's last reply

    wait_connected(epoll, by_fd, latencies)
    for helper in helpers:
        if helper.stdout.readline().strip() != "ready":
            raise SystemExit("a load process failed to connect its listeners")
    time.sleep(0.5)
    pump(0.05)
    after = rss_kib(server_pid) if server_pid else 0

    posters = [socket.create_connection(("127.0.0.1", port)) for _ in range(args.posters)]
    for poster in posters:
        poster.setblocking(False)
        epoll.register(poster.fileno(), select.EPOLLIN)
    poster_fds = {p.fileno(): p for p in posters}
    waiting = dict.fromkeys(poster_fds, False)
    replies = dict.fromkeys(poster_fds, b"")

    def post(fd: int) -> None:
        body = json.dumps({"text": f"bm{time.monotonic_ns() // 1000}_"}).encode()
        poster_fds[fd].sendall(request("POST", "/api/rooms/general/messages", body, cookie))
        waiting[fd] = True

    for listener in listeners:
        listener.count = 0
    latencies.clear()
    sent, started = 0, time.monotonic()
    end = started + args.duration
    interval = None if args.saturate else 1 / args.rate
    next_post = started
    while time.monotonic() < end:
        if interval is None:
            for fd in poster_fds:
                if not waiting[fd]:
                    post(fd)
                    sent += 1
        elif time.monotonic() >= next_post:
            fd = next((f for f in poster_fds if not waiting[f]), None)
            if fd is not None:
                post(fd)
                sent += 1
            next_post += interval
        for fd, _ in epoll.poll(0.001 if interval is None else min(0.01, interval)):
            if fd in poster_fds:
                replies[fd] += poster_fds[fd].recv(65536)
                head, sep, body = replies[fd].partition(b"\r\n\r\n")
                size = re.search(rb"Content-Length: (\d+)", head)
                if sep and size and len(body) >= int(size.group(1)):
                    replies[fd] = body[int(size.group(1)):]
                    waiting[fd] = False
                continue
            listener = by_fd[fd]
            try:
                data = listener.sock.recv(READ_SIZE)
            except BlockingIOError:
                continue
            listener.feed(data, latencies)
    elapsed = time.monotonic() - started
    drain_end = time.monotonic() + 15
    expected = sent * len(listeners)
    while time.monotonic() < drain_end:
        got = sum(listener.count for listener in listeners)
        if got >= expected:
            break
        pump(0.05)
    got = sum(listener.count for listener in listeners)
    short = [listener for listener in listeners if listener.count < sent]
    if short:
        print(f"{len(short)} listeners got fewer than {sent} posts; the first bytes of one: "
              f"{short[0].first[:400]!r}", file=sys.stderr)
    for helper in helpers:
        helper.stdin.write(f"{sent}\n")
        helper.stdin.flush()
    for helper in helpers:
        report = json.loads(helper.stdout.readline())
        helper.wait(10)
        got += report["got"]
        if report["short"]:
            print(f"{report['short']} listeners of a further load process got fewer than "
                  f"{sent} posts", file=sys.stderr)
    expected = sent * args.listeners
    latencies.sort()

    def pct(p: float) -> float | None:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2) \
            if latencies else None

    return {
        "listeners": args.listeners, "posts": sent, "posts_per_s": round(sent / elapsed, 1),
        "deliveries": got, "expected": expected,
        "deliveries_per_s": round(got / elapsed),
        "latency_ms": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
                       "max": pct(1.0), "median": statistics.median(latencies)
                       if latencies else None},
        "kib_per_listener": round((after - before) / args.listeners, 1)
        if server_pid and args.listeners else None,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listeners", type=int, default=1000)
    parser.add_argument("--mode", choices=["memory", "redis", "flask-reference"],
                        default="memory", help="flask-reference: posts only (--listeners 0),"
                        " to a bare Flask app, the reference for posting speed")
    parser.add_argument("--url", help="benchmark a running server instead, e.g. http://127.0.0.1:5000")
    parser.add_argument("--pid", type=int, help="with --url: the server's pid, for memory")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--saturate", action="store_true", help="post as fast as possible")
    load.add_argument("--rate", type=float, default=20, help="messages per second (default 20)")
    parser.add_argument("--posters", type=int, default=8)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1,
                        help="with --mode redis: the server's --workers (default 1)")
    parser.add_argument("--generators", type=int, default=1,
                        help="load processes the listeners are spread over (default 1)")
    parser.add_argument("--listen-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--source", default="127.0.0.1", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.listen_only:
        return listen_only(args.port, args.listeners, args.source)
    if args.workers > 1 and args.mode != "redis":
        parser.error("--workers needs --mode redis")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.listeners + 1000)), hard))
    helpers: list[subprocess.Popen] = []
    server = None
    with tempfile.TemporaryDirectory() as work:
        try:
            if args.url:
                port, pid = int(args.url.rsplit(":", 1)[1].strip("/")), args.pid
            else:
                server, port, helpers = start_server(args.mode, Path(work), args.workers)
                pid = server.pid
            result = run(args, port, pid)
        finally:
            for proc in [server, *helpers]:
                if proc is not None:
                    proc.terminate()
                    try:
                        proc.wait(10)
                    except subprocess.TimeoutExpired:
                        print(f"pid {proc.pid} did not stop within 10 s of SIGTERM; killed",
                              file=sys.stderr)
                        proc.kill()
                        proc.wait()
    load_text = "as fast as possible" if args.saturate else f"{args.rate:g} msg/s"
    print(f"{result['listeners']} listeners, {args.mode if not args.url else args.url}, "
          f"{load_text} for {args.duration:g} s")
    print(f"  posts:       {result['posts']} ({result['posts_per_s']}/s)")
    print(f"  deliveries:  {result['deliveries']} of {result['expected']} expected, "
          f"{result['deliveries_per_s']}/s")
    lat = result["latency_ms"]
    print(f"  latency ms:  p50 {lat['p50']}  p90 {lat['p90']}  p99 {lat['p99']}  max {lat['max']}")
    if result["kib_per_listener"] is not None:
        print(f"  memory:      {result['kib_per_listener']} KiB per listener (server RSS growth)")
    print(json.dumps(result))
    return 0 if result["deliveries"] >= result["expected"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
