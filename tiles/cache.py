"""The tile cache: compressed tiles keyed by (layer, z, x, y, scope), invalidated precisely by area.

**After writing data that is drawn on tiles, call** :func:`invalidate` **or** :func:`invalidate_after_commit`::

    from tiles.cache import invalidate_after_commit
    invalidate_after_commit(session, old_boundary.bounds, new_boundary.bounds)   # a grid edit

Each bounds is ``(west, south, east, north)`` in EPSG:4326 degrees, a Shapely geometry, or None (nothing
there: a new or removed feature). Only cached tiles whose area (with the tile buffer) touches one of the
boxes are dropped, at every zoom and in every layer unless ``layers`` names some; nothing else is
recomputed. Prefer :func:`invalidate_after_commit` inside a transaction: it drops the tiles when the
transaction commits (and not at all if it rolls back), so a tile rendered between the write and the commit
cannot bring the old state back. :func:`invalidate` acts at once (after a commit, or for tests).

Both act on every :class:`TileCache` of this process (a weak registry). :func:`invalidate_after_commit` also
publishes the boxes on :data:`CHANNEL` (PostgreSQL NOTIFY, delivered on commit), and every server process
listens (:func:`on_notify`, wired in ``api.app``), so an edit made by another worker or by the command line
shows on the next tile request too. A tile whose rendering started before an invalidation that touches it is
not stored (generation check), so a slow render cannot put a stale tile back.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from spatial.store.notify import publish

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
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._by_zoom: dict[int, set[Key]] = {}
        self._bytes = 0
        self._generation = 0
        self._recent: deque[tuple[int, tuple[Box, ...], frozenset[str] | None]] = deque(maxlen=_HISTORY)
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

    def put(self, key: Key, entry: Entry, generation: int) -> bool:
        """Store ``entry`` unless an invalidation touching the tile happened since ``generation``."""
        layer, z, x, y, _ = key
        area = Tile(z, x, y).bounds(BUFFER)
        with self._lock:
            if generation != self._generation:
                if not self._recent or self._recent[0][0] > generation + 1:
                    return False  # too old to tell
                for gen, boxes, layers in self._recent:
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

    def invalidate(self, boxes: Iterable[Box], layers: Iterable[str] | None = None) -> int:
        """Drop the tiles touching any of ``boxes`` (lon/lat); returns how many were dropped."""
        boxes = tuple(boxes)
        names = frozenset(layers) if layers is not None else None
        with self._lock:
            self._generation += 1
            self._recent.append((self._generation, boxes, names))
            doomed = [key for box in boxes for key in self._touching(box) if _names_touch(key[0], names)]
            for key in set(doomed):
                self._remove(key)
            self.dropped += len(set(doomed))
            return len(set(doomed))

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

    def clear(self) -> None:
        """Drop everything (after a bulk import, for instance)."""
        with self._lock:
            self._generation += 1
            self._recent.append((self._generation, ((-180.0, -90.0, 180.0, 90.0),), None))
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


def _drop(boxes: list[Box], layers: list[str] | None) -> int:
    """Drop the tiles touching ``boxes`` in every tile cache of this process; returns tiles dropped."""
    return sum(cache.invalidate(boxes, layers) for cache in list(_CACHES)) if boxes else 0


def invalidate(bounds_before: Any, bounds_after: Any = None, *, layers: Iterable[str] | None = None) -> int:
    """Drop, in every tile cache of this process, the tiles touching either area; returns tiles dropped.

    Call it after an edit has been committed, with the old and new extent of what changed (either may be
    None). ``layers`` limits it to some tile layers (default: all, which is right for grids, whose codes
    also appear on buildings and household counts)."""
    return _drop(_boxes(bounds_before, bounds_after), None if layers is None else list(layers))


def invalidate_after_commit(session: Session, bounds_before: Any, bounds_after: Any = None, *,
                            layers: Iterable[str] | None = None) -> None:
    """Like :func:`invalidate`, but when ``session``'s transaction commits (never if it rolls back); other
    processes (server workers, a server beside the command line) hear of it through :data:`CHANNEL`."""
    names = None if layers is None else list(layers)
    boxes = _boxes(bounds_before, bounds_after)
    if not boxes:
        return
    publish(session, CHANNEL, {"boxes": [list(b) for b in boxes], "layers": names})
    session.info.setdefault("tiles_pending", []).append((boxes, names))
    if not session.info.get("tiles_listening"):
        session.info["tiles_listening"] = True
        event.listen(session, "after_commit", _flush_pending)
        event.listen(session, "after_rollback", _drop_pending)


def _flush_pending(session: Session) -> None:
    for boxes, layers in session.info.pop("tiles_pending", []):
        _drop(boxes, layers)


def _drop_pending(session: Session) -> None:
    session.info.pop("tiles_pending", None)


CHANNEL = "gridgov_tiles"


def on_notify(payload: dict[str, Any]) -> None:
    """Apply an invalidation published by another process (see :mod:`spatial.store.notify`)."""
    _drop([tuple(float(v) for v in box) for box in payload["boxes"]], payload.get("layers"))


def clear_all() -> None:
    """Drop every cached tile of this process (when invalidations may have been missed)."""
    for cache in list(_CACHES):
        cache.clear()
