"""Integrity checks of the whole store, as ``gridgov check`` runs them.

Areas are in m², measured in the deployment's metric CRS (``metric_srid``); differences under
``tolerance_m2`` (default 1 m²) are floating-point slivers and ignored. Each check is one SQL query.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.store.engine import server_info
from spatial.store.federation import UNSTATED
from spatial.store.migrate import head_revisions
from spatial.store.privileges import APP_ROLE


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str


_COUNT_CHECKS = {
    "grids inside their community": """
        SELECT count(*) FROM grids g JOIN divisions c ON c.code = g.community_code
        WHERE g.retired_at IS NULL AND c.boundary IS NOT NULL
          AND ST_Area(ST_Transform(ST_Difference(g.boundary, c.boundary), :srid)) > :tol""",
    "no overlapping grids": """
        SELECT count(*) FROM grids a JOIN grids b ON a.id < b.id AND a.community_code = b.community_code
             AND a.boundary && b.boundary
        WHERE a.retired_at IS NULL AND b.retired_at IS NULL
          AND ST_Area(ST_Transform(ST_Intersection(a.boundary, b.boundary), :srid)) > :tol""",
    "communities fully covered by grids": """
        SELECT count(*) FROM divisions c
        JOIN LATERAL (SELECT ST_Union(boundary) AS u FROM grids WHERE community_code = c.code
                      AND retired_at IS NULL) g ON g.u IS NOT NULL
        WHERE c.level = 'community' AND c.boundary IS NOT NULL
          AND ST_Area(ST_Transform(ST_Difference(c.boundary, g.u), :srid)) > :tol""",
    "no building cut by a grid boundary": """
        SELECT count(*) FROM buildings b JOIN grids g ON g.id = b.grid_id
        WHERE ST_Area(ST_Transform(ST_Difference(b.footprint, g.boundary), :srid)) > :tol""",
    "no grid worker assigned to a retired grid": """
        SELECT count(*) FROM grid_assignments a JOIN grids g ON g.id = a.grid_id WHERE g.retired_at IS NOT NULL""",
}


def run_checks(session: Session, metric_srid: int = 4547, tolerance_m2: float = 1.0) -> list[CheckResult]:
    """Every check, in order; a failing check says how many objects fail it."""
    info = server_info(session)
    newest = ", ".join(head_revisions())
    results = [
        CheckResult("extensions", True, f"PostGIS {info['postgis']}, pgRouting {info['pgrouting']}"),
        CheckResult("schema revision", info["schema_revision"] == newest,
                    f"{info['schema_revision']} (newest {newest})"),
    ]
    params = {"srid": metric_srid, "tol": tolerance_m2}
    for name, query in _COUNT_CHECKS.items():
        failures = session.execute(text(query), params).scalar_one()
        results.append(CheckResult(name, failures == 0, f"{failures} failing"))
    results.append(_city(session))
    results.append(_walking_network(session))
    results.append(_service_role(session))
    results.append(_audit_triggers(session))
    return results


AUDIT_TRIGGERS = {"audit_log": ("audit_log_append_only", "audit_log_no_truncate", "audit_log_stamp"),
                  "audit_chain": ("audit_chain_append_only", "audit_chain_no_truncate")}


def _audit_triggers(session: Session) -> CheckResult:
    """Every trigger of the audit tables (migration 0010) exists and fires ALWAYS (also under
    ``session_replication_role = replica``); a superuser's DISABLE and ENABLE leaves them firing on origin only.
    The detail says who owns the tables, i.e. who could disable them."""
    expected = [(table, name) for table, names in AUDIT_TRIGGERS.items() for name in names]
    rows = session.execute(text(
        "SELECT c.relname, t.tgname, t.tgenabled::text AS enabled, c.relowner::regrole::text AS owner "
        "FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "WHERE c.relname = ANY(:tables) AND c.relnamespace = 'public'::regnamespace AND NOT t.tgisinternal"),
        {"tables": list(AUDIT_TRIGGERS)}).all()
    state = {(r.relname, r.tgname): r.enabled for r in rows}
    wrong = [f"{name} {'missing' if (table, name) not in state else 'not ALWAYS (' + state[(table, name)] + ')'}"
             for table, name in expected if state.get((table, name)) != "A"]
    owners = sorted({r.owner for r in rows})
    who = session.scalar(text("SELECT current_user"))
    owned = (f"owned by {', '.join(owners)}" + (f": {who} can disable them, only the hash chain and its anchors show "
                                                "changes" if who in owners else ""))
    return CheckResult("audit triggers always on", not wrong, "; ".join(wrong) if wrong else
                       f"{len(expected)} triggers fire always; {owned}")


def _city(session: Session) -> CheckResult:
    """The grids carry the deployment's city code and lie in that city (their community code starts with it):
    migration 0029, decision 0026. Passes, saying so, while the city is not stated."""
    city, wrong = session.execute(text(
        "SELECT d.city_code, (SELECT count(*) FROM grids g WHERE g.city_code <> d.city_code "
        "OR left(g.community_code, 4) <> d.city_code) FROM deployment d")).one()
    if city == UNSTATED:
        return CheckResult("grids in the deployment's city", True,
                           "the city is not stated (gridgov federation city CODE)")
    return CheckResult("grids in the deployment's city", wrong == 0, f"city {city}: {wrong} grids of another city")


def _service_role(session: Session) -> CheckResult:
    """The service's role exists and may not change the audit log (:mod:`spatial.store.privileges`)."""
    role_ok, may_change = session.execute(text(
        "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = :r), "
        "EXISTS (SELECT FROM pg_roles WHERE rolname = :r AND (has_table_privilege(:r, 'audit_log', 'UPDATE') "
        "OR has_table_privilege(:r, 'audit_log', 'DELETE') OR has_table_privilege(:r, 'audit_log', 'TRUNCATE')))"),
        {"r": APP_ROLE}).one()
    if not role_ok:
        return CheckResult("audit log closed to the service", False,
                           f"role {APP_ROLE} is missing: the service runs as the owner (see spatial/store/privileges.py)")
    return CheckResult("audit log closed to the service", not may_change,
                       f"{APP_ROLE} may {'change' if may_change else 'only read and append to'} audit_log")


def _walking_network(session: Session, min_share: float = 0.99) -> CheckResult:
    """The walkable network is one piece, up to small islands (e.g. a service road reached only by motorway
    ramps in real OSM data): passes when the largest component holds at least ``min_share`` of the nodes."""
    sizes = session.execute(text(
        "SELECT count(*) AS n FROM pgr_connectedComponents("
        "'SELECT id, source, target, cost, reverse_cost FROM walk_edges') GROUP BY component ORDER BY n DESC"
    )).scalars().all()
    if not sizes:
        return CheckResult("walking network connected", True, "no street network loaded")
    share = sizes[0] / sum(sizes)
    return CheckResult("walking network connected", share >= min_share,
                       f"{len(sizes)} component(s); the largest holds {share:.1%} of {sum(sizes)} nodes")
