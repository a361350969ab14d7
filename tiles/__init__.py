"""Vector tiles (Mapbox Vector Tile 2.1) of every gridgov map layer, built in PostGIS. No web framework.

* :mod:`tiles.grid` — tile arithmetic (XYZ on Web Mercator), pure Python;
* :mod:`tiles.sql` — the ``ST_AsMVT`` queries, one per layer and zoom, and the scoped household counts;
* :mod:`tiles.cache` — the cache and its precise invalidation by area, driven by the database: every write to
  a drawn table announces its changed extent itself (triggers of migration 0011), no caller invalidates;
* :mod:`tiles.service` — cache lookup, rendering, gzip and ETags;
* :mod:`tiles.style` — TileJSON and a MapLibre style.
"""

from tiles.cache import TileCache, invalidate
from tiles.service import TileResult, TileService

__all__ = ["TileCache", "TileResult", "TileService", "invalidate"]
