"""A tiny XYZ tile server on 127.0.0.1 for basemap tests: ``/<anything>/{z}/{x}/{y}.png`` is a 256 px PNG of one
colour per tile (:func:`colour`), so a test can tell which tile a page drew where. It records every request path
(with its query). ``/fail/...`` answers 500, ``/text/...`` a text page, ``/redirect/...`` a redirect elsewhere."""

from __future__ import annotations

import re
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_TILE = re.compile(r"/(\d+)/(\d+)/(\d+)\.png$")


def colour(z: int, x: int, y: int) -> tuple[int, int, int]:
    """The tile's colour: differs between neighbouring tiles and between zoom levels."""
    return (x * 53) % 256, (y * 97) % 256, (z * 31 + 7) % 256


def png(rgb: tuple[int, int, int], size: int = 256) -> bytes:
    """A solid ``size`` × ``size`` RGB PNG (no imaging library needed)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = (b"\x00" + bytes(rgb) * size) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class TileServer:
    def __init__(self) -> None:
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                path = self.path.split("?")[0]
                match = _TILE.search(path)
                if path.startswith("/fail/"):
                    self._send(500, "text/plain", b"broken")
                elif path.startswith("/text/"):
                    self._send(200, "text/html", b"<html>not a tile</html>")
                elif path.startswith("/redirect/"):
                    self.send_response(302)
                    self.send_header("Location", "http://example.com/")
                    self.end_headers()
                elif match:
                    self._send(200, "image/png", png(colour(*map(int, match.groups()))))
                else:
                    self._send(404, "text/plain", b"no such tile")

            def _send(self, status: int, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def tiles(self) -> list[tuple[int, int, int]]:
        """(z, x, y) of every tile requested so far."""
        return [tuple(map(int, m.groups())) for p in self.requests if (m := _TILE.search(p.split("?")[0]))]


@contextmanager
def tile_server() -> Iterator[TileServer]:
    server = TileServer()
    thread = threading.Thread(target=server.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()
