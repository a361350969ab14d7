"""Vector tiles (Mapbox Vector Tile 2.1) of every gridgov map layer, built in PostGIS. No web framework.

* :mod:`tiles.grid` — tile arithmetic (XYZ on Web Mercator), pure Python;
* :mod:`tiles.sql` — the ``ST_AsMVT`` queries, one per layer and zoom, and the scoped household counts;
* :mod:`tiles.cache` — the cache and its precise invalidation by area: **call**
  ``tiles.invalidate(bounds_before, bounds_after)`` (or ``tiles.invalidate_after_commit(session, ...)``)
  **after writing a grid or anything else drawn on tiles**;
* :mod:`tiles.service` — cache lookup, rendering, gzip and ETags;
* :mod:`tiles.style` — TileJSON and a MapLibre style.
"""

from tiles.cache import TileCache, invalidate, invalidate_after_commit
from tiles.service import TileResult, TileService

__all__ = ["TileCache", "TileResult", "TileService", "invalidate", "invalidate_after_commit"]
