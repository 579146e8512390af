"""Settings: defaults, then ``CHATROOM_*`` environment variables, then command-line flags."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from .i18n import _

DEFAULT_PORT = 5000
DEFAULT_REDIS_URL = "redis://localhost:6379/0"


class ConfigError(ValueError):
    """A setting has a value the server cannot use; the message says which and how to fix it."""


class DataDirError(RuntimeError):
    """The data folder or a file in it cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class RateLimit:
    """At most ``count`` messages per ``seconds`` for one user."""

    count: int
    seconds: float


@dataclass(frozen=True)
class Config:
    """Everything the server can be told. Field names match the flags and variables."""

    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    redis_url: str | None = None
    # Replicas that must hold a message before its post is answered 201 (Redis WAIT).
    redis_replicas: int = 0
    memory: bool = False
    workers: int = 1
    data_dir: Path = field(default_factory=lambda: Path(platformdirs.user_data_dir("chatroom")))
    no_browser: bool = False
    private: bool = False
    secret_key: str | None = None
    keepalive: float = 15.0
    rate_limit: RateLimit | None = RateLimit(10, 5.0)
    client_buffer: int = 1000
    history: int = 1000
    # Tried when neither --redis nor --memory is given.
    default_redis_url: str = DEFAULT_REDIS_URL
    # How long a name stays held after its session's last stream closed.
    name_hold: float = 60.0
    max_rooms: int = 50
    # Open connections per client address (this computer has no limit).
    max_connections: int = 64
    # Host names served besides this computer's own; ("*",) serves any.
    allowed_hosts: tuple[str, ...] = ()
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks).
    trusted_proxies: tuple[str, ...] = ()
    # The secret of the host link; drawn at each start unless given (several processes).
    host_token: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read every ``CHATROOM_*`` variable over the defaults."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(f"CHATROOM_{f.name.upper()}")
            if raw is not None and f.name not in _INTERNAL:
                values[f.name] = raw
        return cls().updated(values)

    def updated(self, values: Mapping[str, Any]) -> Config:
        """Return a copy with ``values`` (text or typed, ``None`` meaning unset) applied."""
        parsed = {}
        for name, raw in values.items():
            if raw is None:
                continue
            if name not in _PARSERS:
                raise ConfigError(_("Unknown setting {name!r}.").format(name=name))
            parsed[name] = raw if not isinstance(raw, str) else _PARSERS[name](name, raw)
        return replace(self, **parsed)

    def prepare_data_dir(self) -> Path:
        """Create the data folder if needed, readable by this user only; return it.

        It holds private messages and the session secret: a folder of ours that others
        could read is closed to them (0700).
        """
        folder = self.data_dir
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if hasattr(os, "getuid") and folder.stat().st_uid == os.getuid():
                os.chmod(folder, 0o700)
        except OSError as exc:
            raise DataDirError(_(
                "Cannot use the data folder {folder} ({reason}). Choose another with"
                " --data-dir, or make it writable for this user."
            ).format(folder=folder, reason=exc.strerror)) from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise DataDirError(_(
                "The data folder {folder} is read-only for this user. Choose another with"
                " --data-dir, or make it writable."
            ).format(folder=folder))
        return folder

    def load_secret_key(self) -> str:
        """Return the session secret: the configured one, else the data directory's own.

        The first run writes a new random secret there (readable by this user only from
        its creation), so sessions survive restarts and no secret is a constant in the code.
        """
        if self.secret_key:
            return self.secret_key
        path = self.prepare_data_dir() / "secret_key"
        if not path.exists():
            tmp = path.with_name(f".secret_key.{os.getpid()}")
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(secrets.token_hex(32))
                # link() fails if another worker won the race; all then read the winner's.
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    tmp.unlink()
        try:
            secret = path.read_text().strip()
        except OSError as exc:
            raise DataDirError(_(
                "Cannot read the session secret {path} ({reason}). Make it readable"
                " for this user, or delete it to make a new one (everyone logs in again)."
            ).format(path=path, reason=exc.strerror)) from None
        if not secret:
            raise DataDirError(_(
                "The session secret {path} is empty. Delete it to make a new one (everyone"
                " logs in again), or put the old secret back."
            ).format(path=path))
        return secret


def new_host_token() -> str:
    """Return a fresh secret for the host link."""
    return secrets.token_urlsafe(18)


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _optional_text(name: str, raw: str) -> str | None:
    return raw.strip() or None


def _flag(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("", "0", "false", "no", "off"):
        return False
    raise ConfigError(
        _("{var} must be 1 or 0 (true or false), not {raw!r}.").format(var=_var(name), raw=raw)
    )


def _number(low: float, high: float, kind: type = int):
    def parse(name: str, raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            what = _("{var} must be a whole number, not {raw!r}.") if kind is int else _(
                "{var} must be a number, not {raw!r}."
            )
            raise ConfigError(what.format(var=_var(name), raw=raw)) from None
        if not low <= value <= high:
            raise ConfigError(_("{var} must be between {low} and {high}, not {raw!r}.").format(
                var=_var(name), low=low, high=high, raw=raw
            ))
        return value

    return parse


def _path(name: str, raw: str) -> Path:
    if not raw.strip():
        raise ConfigError(_("{var} must name a folder.").format(var=_var(name)))
    return Path(raw.strip()).expanduser()


def _rate_limit(name: str, raw: str) -> RateLimit | None:
    value = raw.strip().lower()
    if value in ("off", "0", "none"):
        return None
    count, _slash, seconds = value.partition("/")
    try:
        limit = RateLimit(int(count), float(seconds))
    except ValueError:
        limit = None
    if limit is None or limit.count < 1 or limit.seconds <= 0:
        raise ConfigError(_(
            "{var} must look like 10/5 (10 messages per 5 seconds) or off, not {raw!r}."
        ).format(var=_var(name), raw=raw))
    return limit


def _host_list(name: str, raw: str) -> tuple[str, ...]:
    return tuple(h.strip().lower().rstrip(".") for h in raw.split(",") if h.strip())


def _networks(name: str, raw: str) -> tuple[str, ...]:
    import ipaddress

    found = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            found.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ConfigError(
                f"{_var(name)} lists addresses or networks (10.0.0.5, 10.0.0.0/24), not {item!r}."
            ) from None
    return tuple(found)


def _var(name: str) -> str:
    return f"CHATROOM_{name.upper()}"


_PARSERS = {
    "host": _text,
    "port": _number(0, 65535),
    "redis_url": _optional_text,
    "redis_replicas": _number(0, 16),
    "memory": _flag,
    "workers": _number(1, 64),
    "data_dir": _path,
    "no_browser": _flag,
    "private": _flag,
    "secret_key": _optional_text,
    "keepalive": _number(0.05, 3600, float),
    "rate_limit": _rate_limit,
    "client_buffer": _number(1, 1_000_000),
    "history": _number(1, 1_000_000),
    "default_redis_url": _text,
    "name_hold": _number(0, 86_400, float),
    "max_rooms": _number(1, 10_000),
    "max_connections": _number(1, 1_000_000),
    "allowed_hosts": _host_list,
    "trusted_proxies": _networks,
    "host_token": _optional_text,
}
# Settings for tests and embedding only: no environment variable reads them.
_INTERNAL = {"default_redis_url"}
