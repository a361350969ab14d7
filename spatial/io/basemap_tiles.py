"""Fetching basemap tiles from their tile server, for the tile proxy (``/api/basemaps/{name}/tiles/...``).

The server fetches so that keys stay on the server and pages load images from their own origin only
(docs/decisions/0013-basemaps.md). Each fetch: no redirect followed (a tile server that redirects is misconfigured
or hijacked: 502), no cookies, no headers of the page's request passed on (no token, no Referer), at most
:data:`MAX_TILE_BYTES`, only ``image/png``, ``image/jpeg`` or ``image/webp`` accepted, :data:`TIMEOUT_S` seconds.
Errors are :class:`~spatial.errors.UpstreamFailed` (502) or :class:`~spatial.errors.UpstreamTimeout` (504) naming
the host and what to check, never the URL (it may hold a key); the upstream's 404 is :class:`NotFound`.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx

from spatial.errors import NotFound, UpstreamFailed, UpstreamTimeout

MAX_TILE_BYTES = 4_000_000
TIMEOUT_S = 10.0
CONNECT_TIMEOUT_S = 4.0
IMAGE_TYPES = ("image/png", "image/jpeg", "image/webp")
USER_AGENT = "gridgov-basemap-proxy/0.1"


class TileFetcher:
    """One pooled HTTP client per event loop (an async client belongs to the loop it was made on; a server
    process has one loop, tests may have two); made on first use, kept for the life of the process."""

    def __init__(self) -> None:
        self._clients: dict[int, httpx.AsyncClient] = {}

    def _client(self) -> httpx.AsyncClient:
        loop = id(asyncio.get_running_loop())
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx.AsyncClient(
                follow_redirects=False, headers={"User-Agent": USER_AGENT}, trust_env=False,
                timeout=httpx.Timeout(TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
        return client

    async def fetch(self, url: str) -> tuple[bytes, str]:
        """(body, content type) of the image at ``url``; errors as the module docstring says."""
        host = urlsplit(url).hostname or "?"
        try:
            async with self._client().stream("GET", url) as response:
                if response.status_code == 404:
                    raise NotFound(f"the tile server {host} has no tile here")
                if response.status_code != 200:
                    hint = " (check the key in basemap_keys and its allowed addresses)" \
                        if response.status_code in (401, 403, 418) else ""
                    raise UpstreamFailed(f"the tile server {host} answered {response.status_code}{hint}",
                                         upstream_status=response.status_code)
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if kind not in IMAGE_TYPES:
                    raise UpstreamFailed(f"the tile server {host} answered {kind or 'no content type'}, not a PNG, "
                                         "JPEG or WebP image (is the URL template right?)")
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_TILE_BYTES:
                        raise UpstreamFailed(f"the tile server {host} sent more than {MAX_TILE_BYTES} bytes for "
                                             "one tile")
                return bytes(body), kind
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"the tile server {host} did not answer within {TIMEOUT_S:g} s") from None
        except httpx.HTTPError as exc:
            raise UpstreamFailed(f"the tile server {host} could not be reached ({type(exc).__name__})") from None
