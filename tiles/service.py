"""Serving tiles: cache lookup, rendering on a miss, gzip, ETags. No web framework here.

The router (``api/routers/tiles.py``) authenticates the caller and calls :meth:`TileService.tile` or
:meth:`TileService.combined`; the CLI, notebooks and the benchmark can use the same object.
Tiles are stored gzip-compressed at ``gzip_level`` (1 by default: level 9 triples the time for about 14%
fewer bytes). An empty tile is ``b""``.
"""

from __future__ import annotations

import gzip
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from spatial.access import Principal
from spatial.errors import Forbidden, InvalidInput
from spatial.store.aio import AsyncPool, fetch_all
from spatial.store.replica import FreshReads
from tiles.cache import Entry, TileCache
from tiles.grid import Tile
from tiles.sql import render, render_statement, scope_key, tile_layer, tile_layers


@dataclass(frozen=True)
class TileResult:
    data: bytes          # gzip-compressed MVT, b"" when empty
    etag: str
    cached: bool
    seen_lsn: int | None = None  # rendered now on a replica that had replayed this far (None: primary or cache)

    def plain(self) -> bytes:
        """The uncompressed MVT (for clients that do not accept gzip)."""
        return gzip.decompress(self.data) if self.data else b""


@dataclass(frozen=True)
class _Miss:
    """A tile to render: its cache key, the cache generation before rendering, the layers of a combined tile."""

    tile: Tile
    key: tuple
    generation: int
    layers: tuple[str, ...] = ()


def _entry(raw: bytes, level: int) -> Entry:
    data = gzip.compress(raw, compresslevel=level, mtime=0) if raw else b""
    return Entry(data, '"' + hashlib.blake2b(raw, digest_size=8).hexdigest() + '"')


class TileService:
    def __init__(self, sessions: sessionmaker[Session], *, metric_srid: int = 4547,
                 cache: TileCache | None = None, gzip_level: int = 1) -> None:
        if not 1 <= gzip_level <= 9:
            raise ValueError("gzip_level must be 1–9")
        self.sessions = sessions
        self.metric_srid = metric_srid
        self.cache = cache if cache is not None else TileCache()
        self.gzip_level = gzip_level

    def tile(self, layer: str, z: int, x: int, y: int, who: Principal | None) -> TileResult:
        """One layer's tile for ``who``: NotFound for an unknown layer or a tile outside the matrix,
        Forbidden for a scoped layer the caller may not see."""
        miss = self._miss(layer, z, x, y, who)
        if isinstance(miss, TileResult):
            return miss
        with self.sessions() as session:
            raw = render(session, layer, miss.tile, scope=miss.key[4], metric_srid=self.metric_srid)
        return self._store(miss, raw)

    async def tile_async(self, pool: AsyncPool | FreshReads, layer: str, z: int, x: int, y: int,
                         who: Principal | None) -> TileResult:
        """:meth:`tile` rendered by one statement on the event loop (:mod:`spatial.store.aio`); with
        :class:`~spatial.store.replica.FreshReads`, on a replica when it is fresh enough for the caller (and
        cached only if it had replayed every invalidation touching the tile)."""
        miss = self._miss(layer, z, x, y, who)
        if isinstance(miss, TileResult):
            return miss
        statement = render_statement(layer, miss.tile, scope=miss.key[4], metric_srid=self.metric_srid)
        if statement is None:
            return self._store(miss, b"")
        if isinstance(pool, AsyncPool):
            rows, seen = await fetch_all(pool, *statement), None
        else:
            rows, seen = await pool.fetch_all(*statement)
        return self._store(miss, bytes(rows[0][0] or b""), seen)

    def _miss(self, layer: str, z: int, x: int, y: int, who: Principal | None) -> TileResult | _Miss:
        """The cached tile, or what rendering it needs (the cache generation is taken before rendering, so a
        render overtaken by an invalidation is not stored)."""
        spec = tile_layer(layer)
        tile = Tile.checked(z, x, y)
        key = (layer, z, x, y, scope_key(spec, who, z))
        entry = self.cache.get(key)
        if entry is not None:
            return TileResult(entry.data, entry.etag, True)
        return _Miss(tile, key, self.cache.generation)

    def _store(self, miss: _Miss, raw: bytes, seen_lsn: int | None = None) -> TileResult:
        entry = _entry(raw, self.gzip_level)
        self.cache.put(miss.key, entry, miss.generation, seen_lsn)
        return TileResult(entry.data, entry.etag, False, seen_lsn)

    def visible_layers(self, who: Principal | None, names: Iterable[str] | None = None) -> list[str]:
        """``names`` (default: every tile layer the caller may see), checked, repeats dropped (first kept), so a
        combined tile's cache key is canonical. InvalidInput if empty or if more names are given than there are
        tile layers (``grids`` a thousand times rendered a 2.3 MB tile); NotFound for an unknown name."""
        if names is None:
            chosen = []
            for name, spec in tile_layers().items():
                try:
                    scope_key(spec, who)
                except Forbidden:
                    continue
                chosen.append(name)
            return chosen
        given = [n for n in names if n]
        if not given:
            raise InvalidInput("layers must name at least one layer, e.g. layers=grids,buildings")
        if len(given) > len(tile_layers()):
            raise InvalidInput(f"layers names {len(given)} layers; there are {len(tile_layers())}: "
                               f"name each at most once ({', '.join(tile_layers())})")
        chosen = list(dict.fromkeys(given))
        for name in chosen:
            tile_layer(name)
        return chosen

    def combined(self, names: Iterable[str] | None, z: int, x: int, y: int, who: Principal | None) -> TileResult:
        """Several layers in one tile (MVT layers concatenate); each comes from the per-layer cache."""
        miss = self._combined_miss(names, z, x, y, who)
        if isinstance(miss, TileResult):
            return miss
        return self._combine(miss, [self.tile(name, z, x, y, who) for name in miss.layers])

    async def combined_async(self, pool: AsyncPool | FreshReads, names: Iterable[str] | None, z: int, x: int, y: int,
                             who: Principal | None) -> TileResult:
        """:meth:`combined` with its layers rendered on the event loop (:meth:`tile_async`)."""
        miss = self._combined_miss(names, z, x, y, who)
        if isinstance(miss, TileResult):
            return miss
        return self._combine(miss, [await self.tile_async(pool, name, z, x, y, who) for name in miss.layers])

    def _combined_miss(self, names: Iterable[str] | None, z: int, x: int, y: int,
                       who: Principal | None) -> TileResult | _Miss:
        chosen = self.visible_layers(who, names)
        tile = Tile.checked(z, x, y)
        scopes = "|".join(scope_key(tile_layer(name), who, z) for name in chosen)
        key = ("+".join(chosen), z, x, y, scopes)
        entry = self.cache.get(key)
        if entry is not None:
            return TileResult(entry.data, entry.etag, True)
        return _Miss(tile, key, self.cache.generation, tuple(chosen))

    def _combine(self, miss: _Miss, parts: list[TileResult]) -> TileResult:
        """The parts in one tile, stored as fresh as its stalest part rendered on a replica."""
        seen = min((part.seen_lsn for part in parts if part.seen_lsn is not None), default=None)
        return self._store(miss, b"".join(part.plain() for part in parts), seen)
