"""Hot spots (高发点位): places where cases of the same category keep coming back.

**Method.** The pool is the caller's cases (area scope, as :mod:`spatial.store.case_figures`) of the category
(a code and its sub-categories: ``environment`` takes ``environment.garbage``) that were reported in the last
``days`` days or are still unresolved (not closed), leaving out rejected ones and merged duplicates (a
duplicate is one problem reported twice, not a repeat). Their points, transformed to the deployment's metric
CRS (``metric_srid``, metres; EPSG:4547 for Shenzhen), are clustered with ``ST_ClusterDBSCAN(eps => eps_m,
minpoints => min_cases)`` separately per category code (``PARTITION BY``): a hot spot is a DBSCAN cluster, i.e.
at least ``min_cases`` cases each within ``eps_m`` metres (straight line) of another case of the cluster
that has that many within reach. Cases in no cluster (noise) are not answered.

**Answer.** One polygon per hot spot in EPSG:4326 (lon, lat): the convex hull of its cases widened by half of
``eps_m`` (so that two or three points make an area), with its case ids, counts and first and last report.
Ordered by the number of cases, most first. Runs entirely in SQL: one window function over the pool, which
the ``cases_location`` index does not help (the pool is chosen by time, category and area).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.store.layers import Feature
from spatial.store.scope import scope_sql

EPS_M = 50.0
MIN_CASES = 3

_SQL = """
WITH pool AS (
    SELECT c.id, c.category_code, c.state, c.reported_at, ST_Transform(c.location, :srid) AS g
    FROM cases c
    WHERE c.duplicate_of IS NULL AND c.state <> 'rejected' AND {scope}
      AND (c.reported_at >= :since OR c.state <> 'closed')
      AND (CAST(:category AS text) IS NULL OR c.category_code = :category OR c.category_code LIKE :category || '.%')
), clustered AS (
    SELECT pool.*, ST_ClusterDBSCAN(g, eps => :eps, minpoints => :minpoints)
                       OVER (PARTITION BY category_code) AS cluster
    FROM pool
)
SELECT q.category_code, k.name AS category, q.cases, q.unresolved, q.first_reported, q.last_reported, q.case_ids,
       ST_AsBinary(ST_Transform(ST_Buffer(ST_ConvexHull(q.points), :eps / 2.0), 4326)) AS wkb
FROM (SELECT category_code, cluster, count(*) AS cases, count(*) FILTER (WHERE state <> 'closed') AS unresolved,
             min(reported_at) AS first_reported, max(reported_at) AS last_reported,
             array_agg(id ORDER BY id) AS case_ids, ST_Collect(g) AS points
      FROM clustered WHERE cluster IS NOT NULL GROUP BY category_code, cluster) q
JOIN case_categories k ON k.code = q.category_code
ORDER BY q.cases DESC, q.category_code, q.case_ids[1]
"""


def hotspots(session: Session, who: Principal, *, category: str | None = None, days: int = 90,
             eps_m: float = EPS_M, min_cases: int = MIN_CASES, metric_srid: int = 4547,
             now: datetime | None = None) -> list[Feature]:
    """The hot spots of the caller's area (module docstring), as features with id ``<category>#<n>`` (n counts
    from 1 in the answer's order). InvalidInput for an unknown category, ``days`` outside 1–3,660, ``eps_m``
    outside 5–1,000 or ``min_cases`` outside 2–100."""
    if not 1 <= days <= 3660:
        raise InvalidInput("days must be between 1 and 3,660", field="days")
    if not 5 <= eps_m <= 1000:
        raise InvalidInput("eps_m must be between 5 and 1,000 metres", field="eps_m")
    if not 2 <= min_cases <= 100:
        raise InvalidInput("min_cases must be between 2 and 100", field="min_cases")
    if category is not None:
        known = session.execute(text("SELECT 1 FROM case_categories WHERE code = :c"), {"c": category}).first()
        if known is None:
            raise InvalidInput(f"unknown case category {category!r} (GET /api/cases/categories lists them)",
                               field="category")
    area, params = scope_sql(who.area, grid_col="c.grid_id", community_col="c.community_code")
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    rows = session.execute(text(_SQL.format(scope=area)), {
        **params, "srid": metric_srid, "since": since, "category": category, "eps": eps_m,
        "minpoints": min_cases}).mappings().all()
    geoms = shapely.from_wkb([bytes(r["wkb"]) for r in rows]) if rows else []
    return [Feature(id=f"{r['category_code']}#{n}", geometry=g, properties={
        "category_code": r["category_code"], "category": r["category"], "cases": r["cases"],
        "unresolved": r["unresolved"], "first_reported": r["first_reported"].isoformat(),
        "last_reported": r["last_reported"].isoformat(), "case_ids": list(r["case_ids"])})
        for n, (r, g) in enumerate(zip(rows, geoms, strict=True), start=1)]
