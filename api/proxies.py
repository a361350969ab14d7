"""Who the client is behind a reverse proxy: ``X-Forwarded-For`` believed only from configured proxies.

The client address goes into the audit log and the per-address login limit (:func:`api.deps.client_address`),
so it must not be forgeable. The web server's own proxy-header handling is off (``gridgov serve`` runs uvicorn
with ``proxy_headers=False``: uvicorn's default believes any loopback peer); this middleware is the one place the
address is derived. With ``settings.trusted_proxies`` empty (the default) the header is ignored and the client is
the peer of the TCP connection. Otherwise, when the peer is one of those addresses or networks, the client is
the right-most address of ``X-Forwarded-For`` (all such headers, in order) that is not itself a trusted proxy,
as each proxy appends the address it saw: entries further left were written by the client and are not believed.
A malformed entry stops the walk there (it is the client, cut to :data:`MAX_ADDRESS_LENGTH` characters).
``X-Forwarded-Proto`` and ``Forwarded`` are ignored: URLs the service hands out come from ``settings.public_url``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
MAX_ADDRESS_LENGTH = 64


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def is_trusted(host: str | None, proxies: Sequence[Network]) -> bool:
    """Whether ``host`` (an address as text) lies in one of ``proxies``."""
    address = _address(host) if host else None
    return address is not None and any(address in network for network in proxies)


def forwarded_client(peer: str | None, forwarded_for: str, proxies: Sequence[Network]) -> str | None:
    """The client's address given the TCP peer and the joined ``X-Forwarded-For`` values (module docstring)."""
    if not proxies or not is_trusted(peer, proxies):
        return peer
    client = peer
    for entry in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not entry:
            continue
        client = entry[:MAX_ADDRESS_LENGTH]
        if not is_trusted(entry, proxies):
            break
    return client


class ForwardedFor:
    """ASGI middleware: ``scope["client"]`` becomes the forwarded client when the peer is a trusted proxy.
    Reads the proxies from the app's settings on each request (``app.state.settings.trusted_proxies``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            proxies = scope["app"].state.settings.trusted_proxies
            client = scope.get("client")
            if proxies and client:
                values = [value.decode("latin-1") for name, value in scope["headers"] if name == b"x-forwarded-for"]
                if values:
                    host = forwarded_client(client[0], ",".join(values), proxies)
                    if host != client[0]:
                        scope = {**scope, "client": (host, 0)}
        await self.app(scope, receive, send)
