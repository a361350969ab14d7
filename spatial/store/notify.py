"""Tell every server process about a committed change: PostgreSQL ``NOTIFY``, heard by a :class:`Listener`.

Several web server processes (``GRIDGOV_WORKERS``) each keep caches in memory (tiles, callers behind tokens).
A change made through one process must reach the others. :func:`publish` sends a notification *inside the
writer's transaction*: PostgreSQL delivers it only if, and when, that transaction commits, so no process
hears of a change that was rolled back. Each process runs one :class:`Listener` thread that ``LISTEN``s on
the channels it cares about and calls a handler per notification.

Payloads are small JSON objects (PostgreSQL's limit is 8,000 bytes). Delivery is at most once: a listener
that was disconnected (database restart) misses what was sent meanwhile, so on reconnecting it calls
``on_reconnect`` (for caches: drop everything).

With read replicas (:mod:`spatial.store.replica`) a listener given ``on_position`` also asks the primary's WAL
position when it connects and after each batch of notifications: a notification is delivered after its
transaction's commit record is written, so that position is at or past the commit. Each payload then carries it
as ``"lsn"`` (an int), and ``on_position`` is told it.
"""

from __future__ import annotations

import json
import logging
import os
import select
import threading
from collections.abc import Callable, Mapping
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.store.replica import INSERT_LSN

log = logging.getLogger("gridgov.notify")

Handler = Callable[[dict[str, Any]], None]


def publish(session: Session, channel: str, payload: Mapping[str, Any]) -> None:
    """Notify ``channel`` with ``payload`` (JSON) when ``session``'s transaction commits."""
    session.execute(text("SELECT pg_notify(:channel, :payload)"),
                    {"channel": channel, "payload": json.dumps(payload, separators=(",", ":"))})


class Listener:
    """A daemon thread listening on ``handlers``' channels of the database at ``conninfo`` (a libpq URL).

    Handlers run in the listener thread; an exception in one is logged and does not stop the others.
    ``stop()`` ends the thread at once.
    """

    def __init__(self, conninfo: str, handlers: Mapping[str, Handler], *,
                 on_reconnect: Callable[[], None] = lambda: None, poll_s: float = 1.0, retry_s: float = 2.0,
                 on_position: Callable[[int], None] | None = None) -> None:
        self.conninfo = conninfo
        self.handlers = dict(handlers)
        self.on_reconnect = on_reconnect
        self.on_position = on_position
        self.position: int | None = None  # the primary's WAL position when last asked (with on_position)
        self.poll_s = poll_s
        self.retry_s = retry_s
        self.listening = threading.Event()
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="gridgov-listener", daemon=True)

    def start(self) -> Listener:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        os.write(self._wake_w, b"x")  # wakes the thread at once
        self._thread.join(timeout=self.poll_s + 5)
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)

    def _run(self) -> None:
        connected_before = False
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=3) as conn:
                    for channel in self.handlers:
                        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
                    self._ask_position(conn)
                    if connected_before:
                        self.on_reconnect()  # what was published while we were away is lost
                    connected_before = True
                    self.listening.set()
                    while not self._stop.is_set():
                        ready, _, _ = select.select([conn.fileno(), self._wake_r], [], [], self.poll_s)
                        if self._wake_r in ready:
                            break
                        notes = list(conn.notifies(timeout=0))
                        lsn = self._ask_position(conn) if notes else None
                        for note in notes:
                            self._dispatch(note.channel, note.payload, lsn)
            except psycopg.Error as exc:
                self.listening.clear()
                log.warning("listening for changes failed (%s); retrying in %g s", exc, self.retry_s)
                select.select([self._wake_r], [], [], self.retry_s)

    def _ask_position(self, conn: psycopg.Connection) -> int | None:
        if self.on_position is None:
            return None
        self.position = int(conn.execute(INSERT_LSN).fetchone()[0])
        self.on_position(self.position)
        return self.position

    def _dispatch(self, channel: str, payload: str, lsn: int | None = None) -> None:
        try:
            body = json.loads(payload)
            if lsn is not None and isinstance(body, dict):
                body["lsn"] = lsn
            self.handlers[channel](body)
        except Exception:  # noqa: BLE001 - one bad notification must not stop the listener
            log.exception("handling a %s notification failed", channel)
