"""Bulk, idempotent loading of buildings and street networks (COPY into a staging table, then INSERT).

Rows are matched on ``(origin, origin_ref)``: loading the same rows twice inserts nothing the second
time. Geometries arrive as Shapely geometries in EPSG:4326 (lon, lat) and must already be valid (the
importers validate and report per feature; the table's CHECK constraints are the last line of defence).
Everything runs inside the caller's transaction: the caller commits or rolls back the whole import.

Geometries are converted to WKB in batches (one vectorised ``shapely.to_wkb`` call per
:data:`WKB_BATCH` rows) and sent as ``bytea`` through COPY.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

BUILDING_FIELDS = (
    "origin_ref", "name", "levels", "height_m", "use", "urban_village", "units", "households", "residents",
    "occupancy_estimated", "community_code",
)
NODE_FIELDS = ("origin_ref",)
EDGE_FIELDS = ("origin_ref", "source_ref", "target_ref", "osm_way_id", "highway", "name", "oneway", "foot", "car",
               "length_m")
WKB_BATCH = 5000
SAMPLE = 20  # how many unmatched edge refs LoadCounts keeps as examples


@dataclass
class LoadCounts:
    """What a bulk load did. ``offered`` rows were sent; ``inserted`` are new; ``duplicates`` repeated an
    ``origin_ref`` already offered in the same call (the first one wins); ``unmatched`` are street edges whose
    ``source_ref``/``target_ref`` name no node of the origin (examples in ``unmatched_refs``); the rest were
    ``already_present`` from an earlier load."""

    offered: int = 0
    inserted: int = 0
    duplicates: int = 0
    unmatched: int = 0
    unmatched_refs: list[str] = field(default_factory=list)

    @property
    def already_present(self) -> int:
        return self.offered - self.inserted - self.duplicates - self.unmatched


def _cursor(session: Session):
    return session.connection().connection.driver_connection.cursor()


def _copy_rows(session: Session, table: str, columns: tuple[str, ...], rows: Iterable[tuple]) -> int:
    """COPY rows into a temporary table that is dropped at commit; returns how many were written."""
    count = 0
    with _cursor(session).copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
            count += 1
    return count


def _raw(session: Session, query: str) -> int:
    cursor = _cursor(session)
    cursor.execute(query)
    return cursor.rowcount


def _scalar(session: Session, query: str) -> Any:
    cursor = _cursor(session)
    cursor.execute(query)
    return cursor.fetchone()[0]


def _with_wkb(records: Iterable[Mapping[str, Any]], fields: tuple[str, ...], geom_key: str) -> Iterator[tuple]:
    """Rows of ``fields`` + the WKB of ``record[geom_key]`` (2D, no SRID), converted in vectorised batches."""
    iterator = iter(records)
    while batch := list(islice(iterator, WKB_BATCH)):
        geoms = np.array([record[geom_key] for record in batch], dtype=object)
        wkbs = shapely.to_wkb(geoms, output_dimension=2, include_srid=False)
        for record, wkb in zip(batch, wkbs):
            yield (*(record.get(f) for f in fields), wkb)


def _set_origin(session: Session, origin: str) -> None:
    session.execute(text("SELECT set_config('gridgov.origin', :o, true)"), {"o": origin})


def _duplicates(session: Session, stage: str) -> int:
    return _scalar(session, f"SELECT count(*) - count(DISTINCT origin_ref) FROM {stage}")


def load_buildings(session: Session, origin: str, records: Iterable[Mapping[str, Any]]) -> LoadCounts:
    """Insert buildings not yet present. Each record: ``footprint`` (Polygon/MultiPolygon, EPSG:4326)
    plus any of :data:`BUILDING_FIELDS`; ``origin_ref`` is required and unique within ``origin``."""
    _raw(session, """
        CREATE TEMP TABLE IF NOT EXISTS stage_buildings (
            origin_ref text, name text, levels smallint, height_m real, use text, urban_village boolean,
            units smallint, households integer, residents integer, occupancy_estimated boolean,
            community_code varchar(12), wkb bytea) ON COMMIT DROP""")
    _raw(session, "TRUNCATE stage_buildings")
    offered = _copy_rows(session, "stage_buildings", (*BUILDING_FIELDS, "wkb"),
                         _with_wkb(records, BUILDING_FIELDS, "footprint"))
    _set_origin(session, origin)
    duplicates = _duplicates(session, "stage_buildings")
    inserted = _raw(session, """
        INSERT INTO buildings (origin, origin_ref, name, levels, height_m, use, urban_village, units, households,
                               residents, occupancy_estimated, community_code, footprint)
        SELECT DISTINCT ON (origin_ref) current_setting('gridgov.origin'), origin_ref, name, levels, height_m,
               coalesce(use, 'residential'), coalesce(urban_village, false), units, households, residents,
               coalesce(occupancy_estimated, false), community_code,
               ST_Multi(ST_SetSRID(ST_GeomFromWKB(wkb), 4326))
        FROM stage_buildings ORDER BY origin_ref
        ON CONFLICT (origin, origin_ref) DO NOTHING""")
    return LoadCounts(offered=offered, inserted=inserted, duplicates=duplicates)


_EDGE_ENDS = """
    FROM stage_edges e
    LEFT JOIN street_nodes s ON s.origin = current_setting('gridgov.origin') AND s.origin_ref = e.source_ref
    LEFT JOIN street_nodes t ON t.origin = current_setting('gridgov.origin') AND t.origin_ref = e.target_ref"""


def load_street_network(session: Session, origin: str, nodes: Iterable[Mapping[str, Any]],
                        edges: Iterable[Mapping[str, Any]]) -> tuple[LoadCounts, LoadCounts]:
    """Insert street nodes (``origin_ref``, ``location`` Point) and edges (:data:`EDGE_FIELDS` plus
    ``geom`` LineString running from source to target; ``source_ref``/``target_ref`` name nodes of the same
    origin, already stored or in ``nodes``). ``length_m`` is in metres. Returns (node counts, edge counts).

    Edges whose source or target matches no node are not inserted: they are counted in the edge counts'
    ``unmatched`` (with example refs in ``unmatched_refs``), never dropped silently.
    """
    _raw(session, "CREATE TEMP TABLE IF NOT EXISTS stage_nodes (origin_ref text, wkb bytea) ON COMMIT DROP")
    _raw(session, """
        CREATE TEMP TABLE IF NOT EXISTS stage_edges (
            origin_ref text, source_ref text, target_ref text, osm_way_id bigint, highway text, name text,
            oneway boolean, foot boolean, car boolean, length_m double precision, wkb bytea) ON COMMIT DROP""")
    _raw(session, "TRUNCATE stage_nodes, stage_edges")
    _set_origin(session, origin)
    node_offered = _copy_rows(session, "stage_nodes", (*NODE_FIELDS, "wkb"), _with_wkb(nodes, NODE_FIELDS, "location"))
    node_duplicates = _duplicates(session, "stage_nodes")
    node_inserted = _raw(session, """
        INSERT INTO street_nodes (origin, origin_ref, location)
        SELECT DISTINCT ON (origin_ref) current_setting('gridgov.origin'), origin_ref,
               ST_SetSRID(ST_GeomFromWKB(wkb), 4326)
        FROM stage_nodes ORDER BY origin_ref
        ON CONFLICT (origin, origin_ref) DO NOTHING""")
    edge_offered = _copy_rows(session, "stage_edges", (*EDGE_FIELDS, "wkb"), _with_wkb(edges, EDGE_FIELDS, "geom"))
    edge_duplicates = _duplicates(session, "stage_edges")
    cursor = _cursor(session)
    cursor.execute(f"SELECT DISTINCT e.origin_ref {_EDGE_ENDS} WHERE s.id IS NULL OR t.id IS NULL ORDER BY 1")
    unmatched_refs = [row[0] for row in cursor.fetchall()]
    edge_inserted = _raw(session, f"""
        INSERT INTO street_edges (origin, origin_ref, source, target, osm_way_id, highway, name, oneway, foot, car,
                                  length_m, geom)
        SELECT DISTINCT ON (e.origin_ref) current_setting('gridgov.origin'), e.origin_ref, s.id, t.id,
               e.osm_way_id, e.highway, e.name, coalesce(e.oneway, false), coalesce(e.foot, true),
               coalesce(e.car, true), e.length_m, ST_SetSRID(ST_GeomFromWKB(e.wkb), 4326)
        {_EDGE_ENDS}
        WHERE s.id IS NOT NULL AND t.id IS NOT NULL
        ORDER BY e.origin_ref
        ON CONFLICT (origin, origin_ref) DO NOTHING""")
    edges_counts = LoadCounts(edge_offered, edge_inserted, edge_duplicates, len(unmatched_refs),
                              unmatched_refs[:SAMPLE])
    return LoadCounts(node_offered, node_inserted, node_duplicates), edges_counts
