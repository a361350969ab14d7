"""One network (一张网): the crosswalk of seven department layers over a subdistrict, against a naive Shapely overlay.

The synthetic city (``fixtures.synthetic_city``; default 125,000 households: one full subdistrict of 12 communities,
300 grids, about 4,800 buildings) is loaded into a throw-away database. Seven departments (city management, health,
labour inspection, fire and rescue, market supervision, ecology, police) each get a layer of their own over the first
subdistrict: square cells of 300–800 m, turned 3–21° and shifted so that their boundaries follow none of the
comprehensive grids' (they cut buildings, span communities), clipped to the subdistrict. Each layer is checked
(:func:`spatial.store.one_network.check_department_grids`) and written. Then:

* **gridgov**: :func:`spatial.store.one_network.crosswalk` of the subdistrict (land and building shares of every
  department grid in every comprehensive grid, cut buildings, multi-community grids, proposal) — aim: under 10 s;
* **peer**: a naive Shapely 2 overlay in Python of the same layers: read the department grids, grids and buildings
  (EPSG:4326 WKB), project them with pyproj to EPSG:4547, then for each department grid intersect it with every
  grid and every building (vectorised Shapely calls, no spatial index), as an analyst would write it; timed with and
  without the reads. Its land shares are compared with gridgov's (largest difference printed).

    python -m benchmarks.onenet [--households 125000] [--database-url URL]

Prints figures; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import shapely
import shapely.affinity
from pyproj import Transformer
from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import database
from fixtures.synthetic_city import load_city
from spatial.access import Principal
from spatial.geometry.codes import credit_check_char
from spatial.store import one_network as on
from spatial.store.engine import make_engine

ADMIN = Principal(0, "benchmark", "admin")
DEPARTMENTS = [  # name, layer, cell size (m), turn (degrees)
    ("城市管理和综合执法局", "城管网格", 300, 3), ("卫生健康局", "卫健网格", 400, 7), ("人力资源局", "劳动监察网格", 500, 11),
    ("消防救援大队", "消防网格", 350, 15), ("市场监督管理局", "市场监管网格", 450, 18), ("生态环境局", "生态环境网格", 800, 21),
    ("公安分局", "警务网格", 600, 5)]
_TO_METRIC = Transformer.from_crs(4326, 4547, always_xy=True)
_TO_LONLAT = Transformer.from_crs(4547, 4326, always_xy=True)


def _xy(transformer: Transformer):
    return lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1]))


def department_layers(session: Session, subdistrict: str) -> int:
    """Write the seven layers over ``subdistrict`` (module docstring); returns the number of department grids."""
    wkb = session.scalar(text("SELECT ST_AsBinary(ST_Union(boundary)) FROM divisions WHERE level = 'community' "
                              "AND code LIKE :p"), {"p": subdistrict[:9] + "%"})
    area = shapely.transform(shapely.from_wkb(bytes(wkb)), _xy(_TO_METRIC))
    x0, y0, x1, y1 = area.bounds
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    reach = math.hypot(x1 - x0, y1 - y0)
    total = 0
    for k, (name, layer, size, turn) in enumerate(DEPARTMENTS):
        steps = np.arange(-reach / 2, reach / 2, size)
        cells = [shapely.box(cx + i, cy + j, cx + i + size, cy + j + size) for i in steps for j in steps]
        turned = [shapely.affinity.rotate(c, turn, origin=(cx, cy)) for c in cells]
        shift = shapely.affinity.translate
        clipped = [shapely.intersection(shift(c, 37.0 * k, 23.0 * k), area) for c in turned]
        polygons = [g for g in clipped if not g.is_empty and g.area > 1000]
        lonlat = [shapely.multipolygons(shapely.get_parts(shapely.transform(g, _xy(_TO_LONLAT))))
                  for g in polygons]
        wkbs = [shapely.to_wkb(g) for g in lonlat]
        checked = on.check_department_grids(session, wkbs)
        rows = [{"code": f"{k + 1}{i + 1:03d}", "name": f"{layer}{i + 1}", "wkb": w, "area_m2": a, "scope_code": s}
                for i, (w, a, s) in enumerate(zip(wkbs, checked.areas_m2, checked.scope_codes, strict=True)) if s]
        first = f"1244{subdistrict[2:6]}MB{k:07d}"
        on.write_department_layer(session, department=first + credit_check_char(first), department_name=name,
                                  office_phone=None, layer=layer, rows=rows, actor="benchmark", reason="benchmark")
        total += len(rows)
    return total


def naive_overlay(session: Session, subdistrict: str) -> tuple[float, float, dict[tuple[str, str], float]]:
    """The peer (module docstring): (seconds with reads, seconds of compute, land share per (department grid code,
    grid code))."""
    started = time.perf_counter()
    prefix = {"p": subdistrict[:9] + "%"}
    dgs = session.execute(text("""
        SELECT d.department_code || ':' || d.code, ST_AsBinary(d.boundary) FROM department_grids d
        WHERE d.valid_to IS NULL AND (d.scope_code LIKE :p OR d.scope_code = :district)"""),
                          {**prefix, "district": subdistrict[:6] + "000000"}).all()
    grids = session.execute(text("SELECT id, code, ST_AsBinary(boundary) FROM grids WHERE retired_at IS NULL")).all()
    buildings = session.execute(text("SELECT grid_id, ST_AsBinary(footprint) FROM buildings")).all()
    read = time.perf_counter()
    project = _xy(_TO_METRIC)
    dg_geoms = shapely.transform(shapely.from_wkb([bytes(w) for _, w in dgs]), project)
    grid_geoms = shapely.transform(shapely.from_wkb([bytes(w) for _, _, w in grids]), project)
    footprints = shapely.transform(shapely.from_wkb([bytes(w) for _, w in buildings]), project)
    building_grid = np.array([g or 0 for g, _ in buildings])
    grid_codes = [c for _, c, _ in grids]
    shares: dict[tuple[str, str], float] = {}
    floors: dict[str, np.ndarray] = {}
    for (key, _), dg in zip(dgs, dg_geoms, strict=True):
        land = shapely.area(shapely.intersection(dg, grid_geoms))
        for code, m2 in zip(grid_codes, land, strict=True):
            if m2 > 1:
                shares[(key, code)] = m2 / dg.area
        inside = shapely.area(shapely.intersection(dg, footprints))
        floors[key] = np.bincount(building_grid, weights=inside)  # building floor plate (m²) per grid id
    done = time.perf_counter()
    return done - started, done - read, shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--households", type=int, default=125_000)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    with database(args.database_url, "gridgov_bench_onenet") as (url, _):
        engine = make_engine(url, pool_size=1)
        with Session(engine) as session:
            started = time.perf_counter()
            counts = load_city(session, households=args.households)
            session.commit()
            print(f"city: {args.households:,} households, {counts.get('buildings', 0):,} buildings, "
                  f"{counts.get('grids', 0):,} grids (load {time.perf_counter() - started:.0f} s)")
            subdistrict = session.scalar(text("SELECT min(code) FROM divisions WHERE level = 'subdistrict'"))
            started = time.perf_counter()
            made = department_layers(session, subdistrict)
            session.commit()
            print(f"7 department layers over {subdistrict}: {made} department grids checked and written in "
                  f"{time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            cw = on.crosswalk(session, ADMIN, subdistrict)
            ours = time.perf_counter() - started
            print(f"gridgov crosswalk: {ours:.2f} s (aim < 10 s) for {len(cw.grids)} department grids: "
                  f"{len(cw.pieces)} pieces, {len(cw.cut)} cut buildings, {len(cw.multi_community)} multi-community "
                  f"grids, {sum(a.action == 'move' for a in cw.proposal)} pieces proposed to move")
            total, compute, shares = naive_overlay(session, subdistrict)
            mine = {(f"{cw.grids[p.department_grid]['department']}:{cw.grids[p.department_grid]['code']}",
                     p.grid_code): p.land_share for p in cw.pieces if p.grid_code and p.land_m2 > 1}
            common = set(mine) & set(shares)
            worst = max((abs(mine[k] - shares[k]) for k in common), default=float("nan"))
            print(f"peer: naive Shapely {shapely.__version__} overlay in Python (no index): {total:.2f} s with reads, "
                  f"{compute:.2f} s compute only; land shares of {len(common)} pieces agree with gridgov's within "
                  f"{worst:.1e} (pieces only one side found: {len(set(mine) ^ set(shares))})")
        engine.dispose()


if __name__ == "__main__":
    main()
