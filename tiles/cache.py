"""The tile cache: compressed tiles keyed by (layer, z, x, y, scope), invalidated precisely by area.

**Nobody calls invalidation after a write**: the database announces it. A statement-level trigger on every
drawn table (migration ``0011_tile_changes``) sends the extents a statement changed on :data:`CHANNEL`
(PostgreSQL NOTIFY, delivered when the transaction commits, never after a rollback) and records them in the
transaction-local setting :data:`PENDING_SETTING`. Two paths apply them:

* every server process listens (:func:`on_notify`, wired in ``api.app``), so a change made by another worker,
  the command line or ``psql`` shows on the next tile request there;
* the process that wrote hears its own commits synchronously (:func:`hear_own_commits`, installed by the first
  :class:`TileCache`): just before a SQLAlchemy session commits it reads the pending changes, and right after
  the commit drops the tiles, so the writer's next tile request is already fresh.

Only cached tiles whose area (with the tile buffer) touches a changed box (``(west, south, east, north)`` in
EPSG:4326 degrees) are dropped, at every zoom, in the layers the table feeds. A tile whose rendering started
before an invalidation that touches it is not stored (generation check), so a slow render cannot put a stale
tile back. With read replicas (:mod:`spatial.store.replica`) an invalidation also carries the primary's WAL
position at or past the change's commit (the writer's commit position, or the primary's position when the
listener heard it), and a tile rendered on a replica is stored only if the replica had replayed every
invalidation touching it (:meth:`TileCache.put`'s ``seen_lsn``): a tile invalidated while a replica lags is not
cached again from the stale copy. :func:`invalidate` drops tiles at once (for tests and tools); :func:`clear_all` drops everything.
"""

from __future__ import annotations

import json
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.orm import Session

from spatial.store.replica import commit_lsn
from tiles.grid import BUFFER, Tile, boxes_touch, tile_range

Box = tuple[float, float, float, float]
Key = tuple[str, int, int, int, str]  # layer, z, x, y, scope
_HISTORY = 512  # invalidations remembered for the generation check

_CACHES: weakref.WeakSet[TileCache] = weakref.WeakSet()


@dataclass(frozen=True)
class Entry:
    data: bytes   # gzip-compressed MVT (b"" for an empty tile)
    etag: str


class TileCache:
    """An LRU cache bounded by the bytes it holds (``max_bytes``), safe to use from many threads."""

    def __init__(self, max_bytes: int = 256 * 2**20) -> None:
        hear_own_commits()
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._by_zoom: dict[int, set[Key]] = {}
        self._bytes = 0
        self._generation = 0
        self._recent: deque[tuple[int, tuple[Box, ...], frozenset[str] | None, int]] = deque(maxlen=_HISTORY)
        self._newest_lsn = 0  # of any invalidation, remembered or forgotten
        self._forgotten_lsn = 0  # of the invalidations that fell out of the history
        self.hits = self.misses = self.dropped = 0
        _CACHES.add(self)

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def generation(self) -> int:
        """Take this before rendering a tile and pass it to :meth:`put`."""
        return self._generation

    def get(self, key: Key) -> Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: Key, entry: Entry, generation: int, seen_lsn: int | None = None) -> bool:
        """Store ``entry`` unless an invalidation touching the tile happened since ``generation``, or, for a tile
        rendered on a replica that had replayed the WAL up to ``seen_lsn`` (None: rendered on the primary), unless
        an invalidation touching it is at a later position (the replica had not replayed that change yet)."""
        layer, z, x, y, _ = key
        area = Tile(z, x, y).bounds(BUFFER)
        with self._lock:
            if seen_lsn is not None and seen_lsn < self._newest_lsn:
                if seen_lsn < self._forgotten_lsn:
                    return False  # too far behind to tell
                for _, boxes, layers, lsn in self._recent:
                    if lsn > seen_lsn and _names_touch(layer, layers) and any(boxes_touch(area, b) for b in boxes):
                        return False
            if generation != self._generation:
                if not self._recent or self._recent[0][0] > generation + 1:
                    return False  # too old to tell
                for gen, boxes, layers, _ in self._recent:
                    if gen > generation and _names_touch(layer, layers) and \
                            any(boxes_touch(area, b) for b in boxes):
                        return False
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old.data)
            self._entries[key] = entry
            self._by_zoom.setdefault(z, set()).add(key)
            self._bytes += len(entry.data)
            while self._bytes > self.max_bytes and self._entries:
                self._remove(next(iter(self._entries)))
            return True

    def _remove(self, key: Key) -> None:
        entry = self._entries.pop(key)
        self._bytes -= len(entry.data)
        self._by_zoom[key[1]].discard(key)

    def invalidate(self, boxes: Iterable[Box], layers: Iterable[str] | None = None, lsn: int | None = None) -> int:
        """Drop the tiles touching any of ``boxes`` (lon/lat); returns how many were dropped. ``lsn``: the WAL
        position at or past the change's commit on the primary (None: unknown, replica renders are not checked
        against it)."""
        boxes = tuple(boxes)
        names = frozenset(layers) if layers is not None else None
        with self._lock:
            self._remember(boxes, names, lsn)
            doomed = [key for box in boxes for key in self._touching(box) if _names_touch(key[0], names)]
            for key in set(doomed):
                self._remove(key)
            self.dropped += len(set(doomed))
            return len(set(doomed))

    def _remember(self, boxes: tuple[Box, ...], names: frozenset[str] | None, lsn: int | None) -> None:
        """A new generation for an invalidation (under the lock)."""
        self._generation += 1
        if len(self._recent) == _HISTORY:
            self._forgotten_lsn = max(self._forgotten_lsn, self._recent[0][3])
        self._recent.append((self._generation, boxes, names, lsn or 0))
        self._newest_lsn = max(self._newest_lsn, lsn or 0)

    def _touching(self, box: Box) -> list[Key]:
        found = []
        for z, keys in self._by_zoom.items():
            if not keys:
                continue
            x0, y0, x1, y1 = tile_range(box, z)
            x0, y0, x1, y1 = x0 - 1, y0 - 1, x1 + 1, y1 + 1  # neighbours reach in through their buffer
            for key in keys:
                _, _, x, y, _ = key
                if x0 <= x <= x1 and y0 <= y <= y1 and boxes_touch(Tile(z, x, y).bounds(BUFFER), box):
                    found.append(key)
        return found

    def clear(self, lsn: int | None = None) -> None:
        """Drop everything (after a bulk import, for instance); ``lsn`` as for :meth:`invalidate`."""
        with self._lock:
            self._remember(((-180.0, -90.0, 180.0, 90.0),), None, lsn)
            self._entries.clear()
            self._by_zoom.clear()
            self._bytes = 0


def _names_touch(key_layer: str, names: frozenset[str] | None) -> bool:
    """Whether a cached key's layer (``a+b`` for a combined tile) is among ``names`` (None: all)."""
    return names is None or any(part in names for part in key_layer.split("+"))


def as_box(bounds: Any) -> Box | None:
    """(west, south, east, north) of a Shapely geometry or a 4-sequence; None for None or empty."""
    if bounds is None:
        return None
    if hasattr(bounds, "bounds"):
        if bounds.is_empty:
            return None
        bounds = bounds.bounds
    west, south, east, north = (float(v) for v in bounds)
    return west, south, east, north


def _boxes(bounds_before: Any, bounds_after: Any) -> list[Box]:
    return [b for b in (as_box(bounds_before), as_box(bounds_after)) if b is not None]


def _drop(boxes: list[Box], layers: list[str] | None, lsn: int | None = None) -> int:
    """Drop the tiles touching ``boxes`` in every tile cache of this process; returns tiles dropped."""
    return sum(cache.invalidate(boxes, layers, lsn) for cache in list(_CACHES)) if boxes else 0


def invalidate(bounds_before: Any, bounds_after: Any = None, *, layers: Iterable[str] | None = None) -> int:
    """Drop at once, in every tile cache of this process, the tiles touching either area; returns tiles dropped.

    Writes need not call it (see the module docstring); it is for tests and tools. Either area may be None;
    ``layers`` limits it to some tile layers (default: all)."""
    return _drop(_boxes(bounds_before, bounds_after), None if layers is None else list(layers))


PENDING_SETTING = "gridgov.tile_changes"
_PENDING = text(f"SELECT current_setting('{PENDING_SETTING}', true)")
_hearing = threading.Lock()
_heard = False


def hear_own_commits() -> None:
    """Make every SQLAlchemy session of this process drop the tiles its own commits changed, as they commit.

    Idempotent. Costs one ``SELECT current_setting(...)`` before the commit of a session that used the
    database (sessions that never touched it are skipped); changes written outside a session (a raw psycopg
    connection) still arrive through the listener."""
    global _heard
    with _hearing:
        if _heard:
            return
        event.listen(Session, "after_begin", _touched)
        event.listen(Session, "before_commit", _collect)
        event.listen(Session, "after_commit", _apply)
        event.listen(Session, "after_rollback", _forget)
        _heard = True


def _touched(session: Session, transaction: Any, connection: Any) -> None:
    session.info["tiles_touched"] = True


def _collect(session: Session) -> None:
    session.flush()  # commit flushes after this hook: the last changes must have reached the triggers
    if not session.info.pop("tiles_touched", False):
        return
    pending = session.execute(_PENDING).scalar()
    if pending:
        session.info["tiles_pending"] = json.loads(pending)


def _apply(session: Session) -> None:
    pending = session.info.pop("tiles_pending", ())
    if pending:
        lsn = commit_lsn(session)  # None unless replicas are configured (spatial.store.replica.track_commits)
        for change in pending:
            on_notify(change if lsn is None else {**change, "lsn": lsn})


def _forget(session: Session) -> None:
    session.info.pop("tiles_pending", None)
    session.info.pop("tiles_touched", None)


CHANNEL = "gridgov_tiles"


def on_notify(payload: dict[str, Any]) -> None:
    """Apply an invalidation published by another process (see :mod:`spatial.store.notify`; its ``lsn``, when
    the listener adds it, is the primary's position when the notification was heard)."""
    _drop([tuple(float(v) for v in box) for box in payload["boxes"]], payload.get("layers"), payload.get("lsn"))


def clear_all(lsn: int | None = None) -> None:
    """Drop every cached tile of this process (when invalidations may have been missed; ``lsn``: the primary's
    position after them)."""
    for cache in list(_CACHES):
        cache.clear(lsn)
