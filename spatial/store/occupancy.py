"""Estimated occupancy in the database: read the buildings without counts, write the estimates.

The method and its assumptions are :mod:`spatial.analysis.occupancy` (pure numpy); this module is its SQL.
Footprint areas in m² in EPSG:4547; the neighbour test in degrees (see the analysis docstring).
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import ColumnElement, case, func, or_, select, text
from sqlalchemy.orm import Session

from spatial.analysis.occupancy import DEFAULTS, Assumptions, Features, estimate
from spatial.store.models import Building

METRIC_SRID = 4547
DEGREES_PER_METRE = 1 / 111_320


def _query(where: ColumnElement[bool] | None, a: Assumptions):
    b = Building.__table__
    n = b.alias("n")
    radius = a.village_neighbour_m * DEGREES_PER_METRE
    same_shape = n.c.footprint.op("~=")(b.c.footprint)  # the same building imported from another source
    neighbours = (select(func.count())
                  .where(n.c.id != b.c.id, func.ST_DWithin(n.c.footprint, b.c.footprint, radius), ~same_shape)
                  .scalar_subquery())
    area = func.ST_Area(func.ST_Transform(b.c.footprint, METRIC_SRID))
    query = (select(b.c.id, area, b.c.levels, b.c.height_m, b.c.use, b.c.urban_village,
                    case((area < a.village_max_footprint_m2, neighbours), else_=0),  # only small ones can be villages
                    b.c.households, b.c.residents, b.c.units)
             .where(or_(b.c.households.is_(None), b.c.residents.is_(None), b.c.units.is_(None)))
             .order_by(b.c.id))
    if where is not None:
        query = query.where(where)
    return query


def read_features(session: Session, where: ColumnElement[bool] | None = None,
                  assumptions: Assumptions = DEFAULTS) -> Features:
    """The buildings with a NULL count (restricted by ``where``), with area and neighbour counts."""
    rows = session.execute(_query(where, assumptions)).all()
    cols = list(zip(*rows)) if rows else [()] * 10

    def floats(values) -> np.ndarray:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=float)

    return Features(
        ids=np.array(cols[0], dtype=np.int64), area_m2=floats(cols[1]), levels=floats(cols[2]),
        height_m=floats(cols[3]), use=np.array(cols[4], dtype=object), urban_village=np.array(cols[5], dtype=bool),
        neighbours=np.array(cols[6], dtype=np.int64), households=floats(cols[7]), residents=floats(cols[8]),
        units=floats(cols[9]))


UPDATE = text("""
    UPDATE buildings b
    SET households = coalesce(b.households, v.households),
        residents = coalesce(b.residents, v.residents),
        units = coalesce(b.units, v.units),
        urban_village = b.urban_village OR v.urban_village,
        occupancy_estimated = true
    FROM unnest(CAST(:ids AS bigint[]), CAST(:households AS integer[]), CAST(:residents AS integer[]),
                CAST(:units AS smallint[]), CAST(:village AS boolean[]))
         AS v(id, households, residents, units, urban_village)
    WHERE b.id = v.id""")


def estimate_occupancy(session: Session, *, where: ColumnElement[bool] | None = None, seed: int = 2020,
                       assumptions: Assumptions = DEFAULTS) -> int:
    """Fill NULL ``households``/``residents``/``units`` of buildings (those matching ``where``: a SQLAlchemy
    condition on :class:`Building` columns) with estimates and
    mark them ``occupancy_estimated``. Deterministic for a seed. Runs in the caller's transaction (no commit).
    Returns the number of buildings updated."""
    features = read_features(session, where, assumptions)
    if len(features.ids) == 0:
        return 0
    households, residents, units, village = estimate(features, seed, assumptions)
    result = session.execute(UPDATE, {
        "ids": features.ids.tolist(), "households": households.tolist(), "residents": residents.tolist(),
        "units": units.tolist(), "village": village.tolist()})
    return result.rowcount
