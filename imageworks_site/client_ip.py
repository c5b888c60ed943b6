"""The client's address behind a reverse proxy, for login throttling (django-axes).

``X-Forwarded-For`` is believed only when the request comes from a proxy listed in
``IMAGEWORKS_TRUSTED_PROXIES`` (addresses or networks): the header is then read from
the right, skipping the trusted proxies, and the first address that is not one of
them is the client. A header sent by anyone else is ignored (``REMOTE_ADDR``), so a
client cannot choose its own address to dodge or cause a lockout.

django-ipware (axes' optional helper) checks the proxies named INSIDE the header,
not the peer that sent it, so a direct connection could still forge the header;
hence this small callable (``AXES_CLIENT_IP_CALLABLE``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from functools import lru_cache

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(values: Iterable[str]) -> list[Network]:
    """``["127.0.0.1", "10.0.0.0/8", "::1"]`` -> networks; ValueError names a bad one."""
    networks = []
    for value in values:
        text = value.strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {text!r}") from None
    return networks


@lru_cache(maxsize=8)
def _trusted(values: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(parse_networks(values))


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a header hop: ``1.2.3.4``, ``1.2.3.4:5678``, ``[::1]:80``."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _is_trusted(address, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in net for net in networks)


def client_ip(request) -> str | None:
    """The address to throttle logins by (see the module docstring)."""
    remote = request.META.get("REMOTE_ADDR") or None
    networks = _trusted(tuple(getattr(settings, "IMAGEWORKS_TRUSTED_PROXIES", ())))
    if not networks or not _is_trusted(_address(remote or ""), networks):
        return remote
    hops = [
        h for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()
    ]
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            return remote  # garbage a trusted proxy would never write
        if not _is_trusted(address, networks):
            return str(address)
    # Every hop is a trusted proxy (an internal client): the left-most one.
    first = _address(hops[0]) if hops else None
    return str(first) if first is not None else remote
