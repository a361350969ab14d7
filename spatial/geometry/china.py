"""The mainland China polygon: where GCJ-02 and BD-09 shifts apply.

Chinese web maps (Amap, Tencent, WeChat: GCJ-02; Baidu: BD-09) shift coordinates only inside
mainland China. Hong Kong, Macau and Taiwan are not shifted, and neither is the rest of the world.
:func:`mainland_polygon` returns the area that *is* shifted. Coordinates are WGS 84 (EPSG:4326)
degrees, axis order (lon, lat).

How the polygon is made:

``mainland = outline - Hong Kong - Macau - Taiwan-administered islands (+ the Paracel Islands)``

* **outline** (``data/china_mainland.geojson``, feature ``outline``): the Natural Earth 1:110m
  admin-0 "China" polygon (public domain; mainland and Hainan, no Taiwan), grown by
  :data:`SEA_MARGIN_M` into the sea inside :data:`CHINA_SEAS` (so coastal cities, Zhoushan, the
  Miaodao and Changshan islands, Weizhou... are covered although the 1:110m coastline misses
  them), holes filled, simplified with a :data:`OUTLINE_TOLERANCE_M` tolerance. Land borders with
  other countries are therefore only good to ~10-30 km: towns on border rivers (Heihe, Hekou,
  Dongxing, Ruili...) may fall outside and pass through unshifted. Good enough for a service whose
  data are in Shenzhen; refine the outline before relying on it near other borders.
* **Hong Kong** (feature ``hong_kong``): a sea frame (:data:`HONG_KONG_FRAME`) minus the union of
  the ten Shenzhen districts from OpenStreetMap, simplified with a
  :data:`HONG_KONG_TOLERANCE_M` tolerance in EPSG:4547. Its northern edge is therefore the real
  Shenzhen River / Deep Bay / Mirs Bay boundary, which gridgov's seed area (Shatou, Futian) sits on.
* **Macau** (:data:`MACAU_RING`): hand-made, accurate to a few hundred metres only.
* **Taiwan-administered** (:data:`TAIWAN_ADMINISTERED`): Taiwan with Penghu, Kinmen, Matsu, Wuqiu;
  coarse boxes through the straits, ~1 km from the nearest mainland coast.

Regenerate the data file (needs Natural Earth, shipped as a test fixture by pyogrio, and the OSM
district file from ``shared/data``)::

    python -m spatial.geometry.china --districts ../shared/data/shenzhen_buildings.gpkg
"""

from __future__ import annotations

import argparse
import functools
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyproj
import shapely
from shapely.geometry import MultiPolygon, Polygon, box, shape

Ring = Sequence[tuple[float, float]]

DATA_FILE = Path(__file__).with_name("data") / "china_mainland.geojson"

OUTLINE_SOURCE = (
    "Natural Earth 1:110m admin-0 'China' (public domain) with a sea margin, simplified; "
    "see spatial/geometry/china.py"
)
# Hong Kong: border derived from OpenStreetMap data (© OpenStreetMap contributors, ODbL 1.0), simplified.
# The same attribution is stored with the coordinates in DATA_FILE.
HONG_KONG_SOURCE = "border derived from OpenStreetMap data (© OpenStreetMap contributors, ODbL 1.0), simplified"

SEA_MARGIN_M = 120_000
"""How far the outline reaches into the sea (metres): covers islands the 1:110m coastline drops."""

OUTLINE_TOLERANCE_M = 10_000
"""Simplification tolerance of the outline (metres, in an Albers projection of China)."""

HONG_KONG_TOLERANCE_M = 30.0
"""Simplification tolerance of the Hong Kong polygon (metres, in EPSG:4547)."""

_ALBERS_CHINA = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +datum=WGS84 +units=m +no_defs"

# Seas on the Chinese side (lon, lat): Bohai, the western Yellow and East China Seas, the Taiwan
# Strait west of its middle, the northern South China Sea and the Gulf of Tonkin east of its
# middle. It limits the sea margin so that it never reaches Korea, Taiwan or Vietnam. The ring's
# landward part runs through China, where it does not matter.
CHINA_SEAS: Ring = (
    (124.25, 40.0), (124.0, 39.6), (123.6, 38.9), (123.3, 37.9), (123.2, 37.0), (122.6, 35.5),
    (123.2, 33.0), (123.8, 31.5), (123.5, 29.5), (122.6, 27.6), (121.6, 26.8), (120.8, 26.3),
    (120.3, 25.6), (119.9, 25.0), (119.0, 24.0), (118.2, 23.3), (117.4, 22.8), (116.2, 22.2),
    (114.8, 21.7), (113.0, 21.0), (111.6, 20.5), (111.6, 19.0), (110.5, 17.7), (109.0, 17.7),
    (108.2, 18.5), (108.1, 19.8), (108.4, 20.5), (108.3, 21.2), (108.05, 21.45), (107.0, 23.0),
    (110.0, 30.0), (120.0, 40.0), (124.25, 40.0),
)

# Hong Kong's frame in the sea: west of Lantau (east of Zhuhai's Guishan Island), south of Lamma
# and Po Toi (north of Wailingding), east of the Ninepins. Its northern edge runs inside Shenzhen,
# which is then cut away, leaving the real land and Deep Bay / Mirs Bay boundary.
HONG_KONG_FRAME: Ring = (
    (113.82, 22.22), (113.82, 22.42), (113.895, 22.455), (113.92, 22.56), (114.52, 22.62),
    (114.52, 22.13), (113.88, 22.13), (113.82, 22.22),
)

# Macau, hand-made from general knowledge (coarse: a few hundred metres). Peninsula with the
# Portas do Cerco land border (22.216 N), the Inner Harbour split at mid-channel from Wanzai,
# Taipa, Cotai, Coloane, the airport, and the University of Macau campus on Hengqin (Macau
# jurisdiction since 2013), separated from the rest of Hengqin along the Shap Sam Mun channel.
MACAU_RING: Ring = (
    (113.5320, 22.2150), (113.5400, 22.2160), (113.5469, 22.2163), (113.5520, 22.2180),
    (113.5600, 22.2160), (113.5850, 22.2050), (113.6050, 22.1700), (113.6050, 22.1250),
    (113.5900, 22.1000), (113.5550, 22.1000), (113.5480, 22.1170), (113.5460, 22.1225),
    (113.5370, 22.1225), (113.5370, 22.1370), (113.5455, 22.1375), (113.5480, 22.1450),
    (113.5430, 22.1560), (113.5330, 22.1700), (113.5300, 22.1850), (113.5310, 22.2000),
    (113.5320, 22.2150),
)

# Islands administered from Taipei (not shifted), hand-made, coarse.
TAIWAN_ADMINISTERED: dict[str, Ring] = {
    "Taiwan and Penghu": (
        (119.2, 23.0), (119.2, 23.9), (120.6, 25.4), (121.5, 25.8), (122.3, 25.8), (122.3, 24.0),
        (121.8, 21.7), (120.6, 21.7), (119.2, 23.0),
    ),
    "Kinmen": (
        (118.12, 24.39), (118.14, 24.355), (118.42, 24.36), (118.50, 24.41), (118.50, 24.50),
        (118.44, 24.525), (118.30, 24.515), (118.225, 24.475), (118.195, 24.425), (118.12, 24.39),
    ),
    "Matsu (Nangan, Beigan)": tuple(box(119.88, 26.12, 120.05, 26.27).exterior.coords),
    "Matsu (Liang)": tuple(box(120.15, 26.31, 120.20, 26.35).exterior.coords),
    "Matsu (Juguang)": tuple(box(119.90, 25.93, 120.02, 25.99).exterior.coords),
    "Matsu (Dongyin)": tuple(box(120.45, 26.34, 120.53, 26.40).exterior.coords),
    "Wuqiu": tuple(box(119.43, 24.97, 119.47, 25.00).exterior.coords),
}

# The Paracel Islands (Xisha), administered from Sansha, Hainan: Chinese maps shift them too.
# Farther-off South China Sea islands are not covered.
PARACELS_RING: Ring = tuple(box(111.1, 15.7, 112.9, 17.2).exterior.coords)


@functools.cache
def mainland_polygon() -> Polygon | MultiPolygon:
    """Mainland China (with Hainan), without Hong Kong, Macau and Taiwan, in WGS 84 (lon, lat) degrees.

    The result is built once from :data:`DATA_FILE` and the hand-made rings of this module, and is
    prepared (``shapely.prepare``) so that ``shapely.contains_xy`` on it is fast. Do not modify it.
    """
    outline, hong_kong = _load_data()
    included = shapely.union(outline, Polygon(PARACELS_RING))
    polygon = shapely.difference(included, shapely.union_all(list(excluded_regions(hong_kong).values())))
    shapely.prepare(polygon)
    return polygon


def excluded_regions(hong_kong: Polygon | None = None) -> dict[str, Polygon]:
    """The regions cut out of the outline, by name (WGS 84 lon/lat polygons): Hong Kong, Macau, Taiwan..."""
    hong_kong = _load_data()[1] if hong_kong is None else hong_kong
    regions = {"Hong Kong": hong_kong, "Macau": Polygon(MACAU_RING)}
    regions.update({name: Polygon(ring) for name, ring in TAIWAN_ADMINISTERED.items()})
    return regions


@functools.cache
def _load_data() -> tuple[Polygon | MultiPolygon, Polygon]:
    """The generated parts: (outline, hong_kong), from :data:`DATA_FILE`."""
    features = json.loads(DATA_FILE.read_text(encoding="utf-8"))["features"]
    by_name = {f["properties"]["name"]: shape(f["geometry"]) for f in features}
    return by_name["outline"], by_name["hong_kong"]


# --- Regeneration of DATA_FILE (maintainers only; needs the source files) -------------------------


def _project(geom, transformer: pyproj.Transformer, inverse: bool = False):
    """Apply a pyproj transformer (always_xy) to every coordinate of ``geom``."""
    direction = "INVERSE" if inverse else "FORWARD"

    def fn(xy: np.ndarray) -> np.ndarray:
        return np.column_stack(transformer.transform(xy[:, 0], xy[:, 1], direction=direction))

    return shapely.transform(geom, fn)


def _simplify_metric(geom, crs: str | int, tolerance_m: float):
    """Simplify a lon/lat geometry with a tolerance in metres of the projected ``crs``."""
    transformer = pyproj.Transformer.from_crs(4326, crs, always_xy=True)
    simplified = shapely.simplify(_project(geom, transformer), tolerance_m, preserve_topology=True)
    return _project(simplified, transformer, inverse=True)


def _read_geometries(path: str | Path, layer: str | None = None, keep: Callable[[dict], bool] | None = None):
    """Geometries (shapely) of a vector file, optionally filtered on their attributes."""
    from pyogrio.raw import read  # only needed when regenerating

    meta, _fids, wkb, fields = read(path, layer=layer)
    names = list(meta["fields"])
    rows = [dict(zip(names, values, strict=True)) for values in zip(*fields, strict=True)]
    rows = rows or [{}] * len(wkb)
    return [shapely.from_wkb(g) for g, row in zip(wkb, rows, strict=True) if keep is None or keep(row)]


def derive_outline(naturalearth_path: str | Path) -> Polygon | MultiPolygon:
    """The coarse outline from Natural Earth 1:110m admin-0 countries (field ``name``).

    China is grown by :data:`SEA_MARGIN_M` into :data:`CHINA_SEAS` (never into a neighbour's land),
    holes (the Bohai) are filled, and the result is simplified by :data:`OUTLINE_TOLERANCE_M`.
    """
    china = _read_geometries(naturalearth_path, keep=lambda row: row["name"] == "China")[0]
    others = _read_geometries(naturalearth_path, keep=lambda row: row["name"] != "China")
    neighbours = shapely.union_all([g for g in others if shapely.distance(g, china) < 1.0])
    albers = pyproj.Transformer.from_crs(4326, _ALBERS_CHINA, always_xy=True)
    grown = _project(shapely.buffer(_project(china, albers), SEA_MARGIN_M, quad_segs=4), albers, inverse=True)
    margin = shapely.difference(shapely.intersection(grown, Polygon(CHINA_SEAS)), neighbours)
    outline = _fill_holes(shapely.union(china, margin))
    return shapely.set_precision(_simplify_metric(outline, _ALBERS_CHINA, OUTLINE_TOLERANCE_M), 1e-3)


def derive_hong_kong(districts_path: str | Path, tolerance_m: float = HONG_KONG_TOLERANCE_M) -> Polygon:
    """Hong Kong: :data:`HONG_KONG_FRAME` minus the union of the Shenzhen districts (layer ``districts``).

    Simplified with ``tolerance_m`` metres in EPSG:4547 and rounded to 1e-5 degree; 0 keeps the raw
    OSM border (used by the tests to check the committed one).
    """
    shenzhen = shapely.union_all(_read_geometries(districts_path, layer="districts"))
    hong_kong = shapely.difference(Polygon(HONG_KONG_FRAME), shenzhen)
    if hong_kong.geom_type == "MultiPolygon":  # keep Hong Kong, drop slivers, if any
        hong_kong = max(hong_kong.geoms, key=lambda p: p.area)
    if tolerance_m <= 0:
        return hong_kong
    return shapely.set_precision(_simplify_metric(hong_kong, 4547, tolerance_m), 1e-5)


def _fill_holes(geom: Polygon | MultiPolygon) -> Polygon | MultiPolygon:
    parts = [Polygon(p.exterior) for p in shapely.get_parts(geom)]
    return parts[0] if len(parts) == 1 else MultiPolygon(parts)


def write_data(outline, hong_kong, path: Path = DATA_FILE) -> None:
    """Write the generated parts as a GeoJSON FeatureCollection (WGS 84 lon/lat)."""
    parts = (("outline", OUTLINE_SOURCE, outline), ("hong_kong", HONG_KONG_SOURCE, hong_kong))
    features = [
        json.dumps({"type": "Feature", "properties": {"name": name, "source": source}, "geometry": _geojson(geom)},
                   ensure_ascii=False)
        for name, source, geom in parts
    ]
    header = json.dumps({"type": "FeatureCollection", "attribution": HONG_KONG_SOURCE}, ensure_ascii=False)[:-1]
    path.write_text(header + ', "features": [\n' + ",\n".join(features) + "\n]}\n", encoding="utf-8")


def _geojson(geom) -> dict:
    """GeoJSON geometry with coordinates rounded to 6 decimals (0.1 m): short, stable numbers."""
    mapping = json.loads(shapely.to_geojson(geom))
    return json.loads(json.dumps(mapping), parse_float=lambda text: round(float(text), 6))


def _default_naturalearth() -> Path:
    import pyogrio

    return Path(pyogrio.__file__).parent / "tests" / "fixtures" / "naturalearth_lowres" / "naturalearth_lowres.shp"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Regenerate " + str(DATA_FILE))
    parser.add_argument("--naturalearth", type=Path, default=None, help="Natural Earth 110m countries (field 'name')")
    parser.add_argument("--districts", type=Path, required=True, help="GeoPackage with the Shenzhen 'districts' layer")
    args = parser.parse_args(argv)
    outline = derive_outline(args.naturalearth or _default_naturalearth())
    hong_kong = derive_hong_kong(args.districts)
    write_data(outline, hong_kong)
    print(f"wrote {DATA_FILE}: outline {shapely.get_num_coordinates(outline)} vertices, "
          f"Hong Kong {shapely.get_num_coordinates(hong_kong)} vertices")


if __name__ == "__main__":
    main()
