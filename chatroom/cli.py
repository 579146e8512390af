"""The ``chatroom`` command: arguments, settings and the friendly start-up text."""

from __future__ import annotations

from gevent import monkey

# Before anything else imports socket, ssl or threading: greenlets must see patched ones.
monkey.patch_all()

import argparse  # noqa: E402
import contextlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from typing import TYPE_CHECKING  # noqa: E402

from . import __version__  # noqa: E402
from .config import DEFAULT_PORT, Config, ConfigError, new_host_token  # noqa: E402
from .i18n import _  # noqa: E402
from .startup import browser_line, host_link, open_browser, start_up_text  # noqa: E402

if TYPE_CHECKING:
    from .startup import Ready

_DESCRIPTION = """\
A real-time chat room for your local network, pushed to browsers with Server-Sent Events.
Run it with no options and open the address it prints: everyone on the same network can
join. Every option can also be set with the environment variable shown."""


def build_parser() -> argparse.ArgumentParser:
    """Describe every option, with its environment variable, for ``--help``."""
    p = argparse.ArgumentParser(
        prog="chatroom", description=_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--version", action="version", version=f"chatroom {__version__}")
    p.add_argument("--host", help="address to listen on (CHATROOM_HOST; default 0.0.0.0, "
                   "every network; 127.0.0.1 keeps it to this computer)")
    p.add_argument("--port", type=int, help=f"port (CHATROOM_PORT; default {DEFAULT_PORT}, or "
                   "the next free one if that is taken)")
    broker = p.add_mutually_exclusive_group()
    broker.add_argument("--redis", metavar="URL", dest="redis_url",
                        help="use this Redis, e.g. redis://host:6379/0, and fail if it cannot "
                        "be reached (CHATROOM_REDIS_URL; default: the local Redis if one "
                        "answers, else the in-process broker)")
    broker.add_argument("--memory", action="store_true", default=None,
                        help="use the in-process broker, history in the data directory, "
                        "even if a local Redis runs (CHATROOM_MEMORY=1)")
    p.add_argument("--workers", type=int, metavar="N",
                   help="serve with N processes on one port; needs Redis (CHATROOM_WORKERS)")
    p.add_argument("--data-dir", metavar="DIR", help="where history and the session secret "
                   "are kept (CHATROOM_DATA_DIR; default: your user data folder)")
    p.add_argument("--no-browser", action="store_true", default=None,
                   help="do not open a browser on start (CHATROOM_NO_BROWSER=1)")
    p.add_argument("--private", action="store_true", default=None,
                   help="only logged-in users may listen, read history and see who is "
                   "online (CHATROOM_PRIVATE=1)")
    p.epilog = (
        "More settings, by environment only: CHATROOM_SECRET_KEY (session signing key; "
        "default: made on first run and kept in the data directory), CHATROOM_KEEPALIVE "
        "(seconds between keep-alive comments, 15), CHATROOM_RATE_LIMIT (messages/seconds "
        "per user, 10/5, or off), CHATROOM_CLIENT_BUFFER (events a listener may fall "
        "behind before it is disconnected, 1000), CHATROOM_HISTORY (messages kept per "
        "room, 1000), CHATROOM_MAX_ROOMS (50), CHATROOM_MAX_CONNECTIONS (per client "
        "address, 64), CHATROOM_ALLOWED_HOSTS (host names served besides this computer's), "
        "CHATROOM_TRUSTED_PROXIES (reverse proxies whose X-Forwarded-For is believed), "
        "CHATROOM_HOST_TOKEN (the host link's secret; default: new at each start)."
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the chat until it is stopped; return the process's exit code."""
    argv = sys.argv[1:] if argv is None else argv
    for stream in (sys.stdout, sys.stderr):
        # A console that cannot show a character (ASCII, GBK) gets a "?" for it, never
        # a UnicodeEncodeError that ends the chat.
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="replace")
    code = _main(argv)
    if code != 0 and not argv:
        _keep_window_open()
    return code


def _main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        flags = {
            "host": args.host, "port": args.port, "redis_url": args.redis_url,
            "memory": args.memory, "workers": args.workers, "data_dir": args.data_dir,
            "no_browser": args.no_browser, "private": args.private,
        }
        # As text, so flags are checked by the same rules as environment variables.
        config = Config.from_env().updated(
            {name: str(value) for name, value in flags.items() if value is not None}
        )
    except ConfigError as exc:
        return _fail(str(exc))
    if config.memory and config.redis_url:
        return _fail(
            _("Choose either --memory or --redis (CHATROOM_MEMORY or CHATROOM_REDIS_URL).")
        )
    if config.host_token is None:
        # Drawn here, before any worker starts: every process must know the same one.
        config = config.updated({"host_token": new_host_token()})
    port_explicit = args.port is not None or bool(os.environ.get("CHATROOM_PORT"))

    from . import server, workers

    def ready(where: Ready) -> None:
        # The browser on this computer is the host's: it opens signed in as host.
        opened = None if config.no_browser else open_browser(host_link(where, config))
        print(start_up_text(where, config, opened), flush=True)

    try:
        serve = workers.run if config.workers > 1 else server.run
        return serve(config, port_explicit=port_explicit, on_ready=ready)
    except server.StartError as exc:
        return _fail(str(exc))
    except server.AlreadyRunning as first:
        # A second double-click: bring the first chat forward instead of starting another.
        print(_("chatroom is already running at {url}").format(url=first.url), flush=True)
        if not config.no_browser:
            print(browser_line(open_browser(first.host_link)), flush=True)
        return 0


def _keep_window_open() -> None:
    # Started by a double-click (no arguments, a terminal of its own): the window would
    # close with the error in it. Wait for Enter, but never when nobody can press it.
    if sys.stdin is None or not sys.stdin.isatty():
        return
    with contextlib.suppress(EOFError, KeyboardInterrupt):
        input(_("Press Enter to close this window."))


def _fail(message: str) -> int:
    print(f"chatroom: {message}", file=sys.stderr, flush=True)
    return 2
