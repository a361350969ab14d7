"""Read your writes across replicas: the position of a caller's last write, kept for their next reads.

After a request's transaction commits a write, :func:`note_write` remembers its WAL position
(:func:`spatial.store.replica.commit_lsn`) two ways, so that it reaches the caller's next read in any server
process:

* in this process, by the caller's credentials (SHA-256 of the ``Authorization`` header:
  :class:`~spatial.store.replica.WriteMarks`), for clients that keep no cookies;
* in the ``gridgov-lsn`` cookie of the answer (:class:`WriteMarkCookie`; ``HttpOnly``, ``SameSite=Strict``, ten
  minutes), which browsers send to every worker.

The cookie is not signed: its worst misuse is the caller's own. A position beyond what this process knows the
primary has reached is not waited for (the read goes to the primary), so a forged one only moves the forger's
reads to the primary; an old or absent one only forgoes the forger's own read-your-writes.
Nothing here runs without read replicas (``app.state.replicas`` is None).
"""

from __future__ import annotations

import hashlib
import re

from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spatial.store.aio import AsyncPool
from spatial.store.replica import FreshReads

COOKIE = "gridgov-lsn"
COOKIE_MAX_AGE_S = 600
_HEX = re.compile(r"[0-9a-f]{1,16}")


def caller_key(request: Request) -> bytes | None:
    """Who is calling, as far as write marks go: the SHA-256 of their credentials, None without."""
    credentials = request.headers.get("authorization")
    return hashlib.sha256(credentials.encode()).digest() if credentials else None


def write_mark(request: Request) -> int | None:
    """The position the caller's reads must see: the later of their cookie's and this process's record."""
    replicas = request.app.state.replicas
    if replicas is None:
        return None
    cookie = request.cookies.get(COOKIE, "")
    marks = [int(cookie, 16)] if _HEX.fullmatch(cookie) else []
    remembered = replicas.marks.get(caller_key(request))
    if remembered is not None:
        marks.append(remembered)
    return max(marks, default=None)


def lagging_reads(request: Request) -> AsyncPool | FreshReads:
    """Where one-statement reads that may lag run (uncached tiles): the primary's pool without replicas, else the
    replicas for this caller (fresh enough for their last write, else the primary)."""
    replicas = request.app.state.replicas
    return request.app.state.reads if replicas is None else FreshReads(replicas, write_mark(request))


def note_write(request: Request, lsn: int) -> None:
    """The caller's write committed at ``lsn``: remember it here and in the answer's cookie."""
    replicas = request.app.state.replicas
    if replicas is None:
        return
    replicas.learned(lsn)
    replicas.marks.put(caller_key(request), lsn)
    request.state.write_lsn = max(lsn, getattr(request.state, "write_lsn", 0))


class WriteMarkCookie:
    """Adds the ``gridgov-lsn`` cookie to the answer of a request that wrote (:func:`note_write`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_marked(message: Message) -> None:
            if message["type"] == "http.response.start":
                lsn = scope.get("state", {}).get("write_lsn")
                if lsn:
                    cookie = (f"{COOKIE}={lsn:x}; Max-Age={COOKIE_MAX_AGE_S}; Path=/; HttpOnly; SameSite=Strict")
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_marked)
