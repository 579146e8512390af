"""This computer on the network: its addresses, the host names it answers to, and who a
request comes from (the client address, through trusted reverse proxies only)."""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from collections.abc import Iterable

# How long the list of this computer's addresses is trusted before it is read again
# (a laptop that changes networks gets a new address).
_ADDRESSES_TTL = 30.0
_cache: tuple[float, list[str]] = (0.0, [])


def lan_addresses() -> list[str]:
    """Return this computer's IPv4 addresses other than loopback, best guess first."""
    found: list[str] = []
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # connect() on UDP sends nothing: it only asks the OS which address routes out.
        probe.connect(("10.254.254.254", 1))
        found.append(probe.getsockname()[0])
    except OSError:
        pass
    finally:
        probe.close()
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(str(info[4][0]))
    except OSError:
        pass
    return [a for a in dict.fromkeys(found) if not a.startswith("127.") and a != "0.0.0.0"]


def addresses(host: str, port: int) -> tuple[str, list[str]]:
    """Return the address for this computer and those for others on the network."""
    local = f"http://{'localhost' if host in ('0.0.0.0', '::', '127.0.0.1') else host}:{port}/"
    if host not in ("0.0.0.0", "::"):
        return local, []
    return local, [f"http://{a}:{port}/" for a in lan_addresses()]


def _own_addresses() -> list[str]:
    global _cache
    if time.monotonic() - _cache[0] > _ADDRESSES_TTL:
        _cache = (time.monotonic(), lan_addresses())
    return _cache[1]


def own_names(extra: Iterable[str] = ()) -> set[str]:
    """Return the host names this computer answers to: localhost, its name, ``extra``."""
    # Not socket.getfqdn(): a reverse lookup can hang for seconds on a machine with no
    # network, and a double-click must start at once. Other names: CHATROOM_ALLOWED_HOSTS.
    name = socket.gethostname().lower().rstrip(".")
    return {"localhost", name, f"{name}.local", *extra}


def host_part(host_header: str) -> str:
    """Return the host of a ``Host`` header without its port or IPv6 brackets, lowercased."""
    host = host_header.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    if host.count(":") == 1:
        host = host.partition(":")[0]
    return host.rstrip(".")


def is_own_host(host: str, names: set[str], local_address: str | None) -> bool:
    """True if ``host`` (from :func:`host_part`) names this server.

    A web page elsewhere can make a visitor's browser send requests here only under its
    own host name (DNS rebinding): an address literal, or a name of ours, cannot be that.
    """
    if host in names or host.endswith(".localhost"):
        return True
    ip = _address(host)
    if ip is None:
        return False
    if ip.is_loopback or ip.is_unspecified:
        return True
    if local_address is not None and host == local_address:
        return True
    return host in _own_addresses()


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    # Every request asks about its Host and its client's address: parsed once each. The
    # Host is the visitor's to choose: only what could be an address is remembered.
    return _remembered_address(text) if len(text) <= _ADDRESS_MOST else _parsed(text)


def _parsed(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


# The longest address literal (an IPv6 address with an IPv4 tail and a short zone).
_ADDRESS_MOST = 64
_remembered_address = functools.lru_cache(maxsize=1024)(_parsed)


def is_this_computer(address: str) -> bool:
    """True for a loopback client address (127.0.0.1, ::1)."""
    ip = _address(address)
    if ip is None:
        return False
    if getattr(ip, "ipv4_mapped", None) is not None:
        ip = ip.ipv4_mapped
    # 127.0.0.2 and the rest stand for other machines in tests: only the usual two count.
    return str(ip) in ("127.0.0.1", "::1")


def client_address(remote: str, forwarded_for: str | None, proxies: Iterable[str]) -> str:
    """Return who sent a request: ``remote``, or what a trusted proxy says it forwarded.

    ``X-Forwarded-For`` lists the addresses a request passed through, the nearest last;
    the client is the last one that is not a trusted proxy. From anyone else the header
    is the client's own claim, and ignored.
    """
    networks = [ipaddress.ip_network(p) for p in proxies]

    def trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in networks)

    if not networks or not forwarded_for or not trusted(remote):
        return remote
    for hop in reversed([h.strip() for h in forwarded_for.split(",")]):
        if not trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote
    return remote
