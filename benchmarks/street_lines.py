"""Noding a plain road layer: Shapely (what :mod:`spatial.io.lines` uses) against PostGIS ST_Node / ST_Split.

The OSM edges of Shatou (``../shared/data/futian_shatou.gpkg``) are rewritten as a plain line layer (one line per
street: the reverse twin of each two-way edge dropped; no u/v, no nodes layer) in a temporary folder, then:

* ``shapely.node`` of the lines of each level, and the cutting :mod:`spatial.io.lines` does (STRtree +
  intersection, keeping each piece's line);
* in a throw-away PostGIS: ``ST_Node(ST_Collect(geom))`` per level, and ``ST_Split`` of each line at its
  intersections with the others of its level (what keeping attributes would take in SQL);
* the whole ``import_streets`` of the plain layer, and of the osmnx graph for comparison.

    python -m benchmarks.street_lines [--repeat 3] [--database-url URL]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyogrio
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from benchmarks.common import SHARED_DATA, database
from spatial.io import import_streets
from spatial.io import lines as lines_module
from spatial.io.files import read_layer
from spatial.io.report import ImportReport
from spatial.io.safe_files import vetted
from spatial.store.engine import make_engine

DATA = SHARED_DATA / "futian_shatou.gpkg"


def plain_layer(folder: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edges = pyogrio.read_dataframe(DATA, layer="streets")
    one = (edges.oneway == "True") | (edges.u < edges.v) | (edges.u == edges.v)
    path = folder / "shatou_lines.gpkg"
    pyogrio.write_dataframe(edges.loc[one, ["highway", "oneway", "bridge", "tunnel", "name", "geometry"]], path,
                            layer="roads")
    return path


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def shapely_figures(path: Path, repeat: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with vetted(path) as source:
        layer = read_layer(source, "roads", ImportReport(path.name, ("roads",), "bench"))
    lines = lines_module.street_lines(layer)
    to_m, _ = lines_module._local_metric(lines.geoms)
    parts = lines_module._apply(to_m, lines.geoms)
    level = lines.levels
    groups = [parts[level == lv] for lv in np.unique(level)]
    node_s = best(lambda: [shapely.node(shapely.MultiLineString(list(g))) for g in groups], repeat)
    cut_s = best(lambda: lines_module._pieces(parts, level), repeat)
    pieces, _ = lines_module._pieces(parts, level)
    print(f"{len(parts)} lines, {len(np.unique(level))} levels (bridges/tunnels without a layer each on its own)")
    print(f"  shapely.node per level:              {node_s:.3f} s")
    print(f"  STRtree + intersection + cutting:    {cut_s:.3f} s ({len(pieces)} pieces, each knowing its line)")
    return parts, level, np.array([shapely.to_wkb(p) for p in parts], dtype=object)


def postgis_figures(session: Session, level: np.ndarray, wkbs: np.ndarray, repeat: int) -> None:
    session.execute(text("CREATE TEMP TABLE bench_lines (id int, lv int, geom geometry(LineString))"))
    session.execute(text("""
        INSERT INTO bench_lines SELECT i, lv, ST_GeomFromWKB(w)
        FROM unnest(CAST(:ids AS int[]), CAST(:lv AS int[]), CAST(:w AS bytea[])) AS u (i, lv, w)"""),
        {"ids": list(range(len(wkbs))), "lv": [int(x) for x in level], "w": list(wkbs)})
    session.execute(text("CREATE INDEX ON bench_lines USING gist (geom)"))
    session.execute(text("ANALYZE bench_lines"))
    node = "SELECT count(*) FROM (SELECT (ST_Dump(ST_Node(ST_Collect(geom)))).geom FROM bench_lines GROUP BY lv) x"
    split = """
        WITH cuts AS (
            SELECT a.id, ST_CollectionExtract(ST_Collect(ST_Intersection(a.geom, b.geom)), 1) AS pts
            FROM bench_lines a JOIN bench_lines b ON a.id <> b.id AND a.lv = b.lv AND ST_Intersects(a.geom, b.geom)
            GROUP BY a.id)
        SELECT count(*) FROM (SELECT (ST_Dump(ST_Split(ST_Snap(l.geom, c.pts, 1e-6), c.pts))).geom
                              FROM bench_lines l JOIN cuts c USING (id)) x"""
    print(f"  ST_Node per level (PostGIS):         {best(lambda: session.execute(text(node)).scalar(), repeat):.3f} s")
    print(f"  ST_Split per line (PostGIS):         {best(lambda: session.execute(text(split)).scalar(), repeat):.3f} s"
          " (lines already uploaded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    if not DATA.exists():
        raise SystemExit(f"{DATA} is missing")
    with tempfile.TemporaryDirectory() as folder:
        path = plain_layer(Path(folder))
        _, level, wkbs = shapely_figures(path, args.repeat)
        with database(args.database_url, "gridgov_bench_lines") as (url, _):
            engine = make_engine(url, pool_size=1)
            with Session(engine) as session:
                postgis_figures(session, level, wkbs, args.repeat)
                for source, kwargs in ((path, {}), (DATA, {})):
                    started = time.perf_counter()
                    report = import_streets(session, source, origin=f"bench:{source.name}", **kwargs)
                    print(f"import_streets({source.name}): {time.perf_counter() - started:.2f} s, "
                          f"{report.tally('street_edges').inserted} edges"
                          + (f"; {report.connectivity.summary()}" if report.connectivity else ""))
                session.rollback()
            engine.dispose()


if __name__ == "__main__":
    main()
