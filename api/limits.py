"""Refuse oversized request bodies early (413), before they are read into memory or parsed.

Checks the declared ``Content-Length`` first (the app is not called at all) and also counts the bytes of bodies
sent without one (chunked), so a client cannot stream past the limit: the read that crosses it fails, whatever
the app answers then (FastAPI would call it "an error parsing the body", 400) is dropped, and the client gets
the 413. An uploaded zip may inflate to :data:`ARCHIVE_INFLATION` times the body limit; it is unpacked, counting
the bytes, by :mod:`spatial.io.safe_files`.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


ARCHIVE_INFLATION = 20
"""An uploaded zip may unpack to at most this many times the body limit."""


class BodyLimit:
    """ASGI middleware: 413 for a request body over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        seen, exceeded, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal seen, exceeded
            if exceeded:
                raise _TooLarge
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                exceeded = True
                raise _TooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if exceeded:
                return  # the app's answer to the failed read; the client gets the 413 instead
            started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": "PayloadTooLarge",
                           "detail": f"the request body is larger than {self.max_bytes:,} bytes; "
                                     "split the upload or simplify the geometry"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass
