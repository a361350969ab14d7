"""Patrol records (巡查记录): a grid worker's patrol as walked — fixes, check-ins, cases found — matched and scored.

The field page starts a patrol in one of the worker's grids, sends its GPS fixes in batches (buffered on the phone
while offline, in the datum the client states: WGS 84 from browser geolocation, GCJ-02 from WeChat/Amap), checks in
at buildings and checkpoints, reports problems as cases, and ends it. Ending matches the track to the walking
network (:mod:`spatial.analysis.mapmatch`, an HMM à la Newson & Krumm) and scores it (:func:`score`):

* lanes of the grid covered (:func:`spatial.store.patrols.grid_lanes`: share by count and by metres),
* buildings of the grid passed within ``pass_m`` metres of the matched route,
* time (start to end, and time with a signal), distance along the matched route, gaps where the signal was lost
  (no fix for more than :data:`GAP_S` seconds), check-ins, cases,
* fixes left out: too fast (absurd speed or a jump), a repeated instant, in the future, before the start; fixes
  that arrived out of order are sorted (an offline batch comes late), not refused,
* the datum: the fixes are read in the declared datum and in the other one; if the other fits the walking network
  far better (median distance to it under half the declared one's, and :data:`SUSPECT_M` metres less), the record is
  flagged ``datum_suspect`` and scored in the datum that fits (a GCJ-02 track declared WGS 84 is ~600 m off in
  Shenzhen).

Nothing is counted twice: a fix is stored once per instant (a batch sent again adds nothing), a check-in once per
target and patrol, a start once per ``client_ref``; ending an ended patrol answers its record unchanged.

Tracks are personal data of the worker: a record is seen by the worker, by a leader (``grid_assignments.duty =
'leader'``) of its grid, and by admins; others get NotFound. Every read is audited. After
``Settings.patrol_track_days`` :func:`prune` deletes the fixes, the route and the check-in positions, keeping the
scores, and closes patrols left open longer than ``patrol_open_hours`` as abandoned (``gridgov patrols prune``).

Positions out are EPSG:4326 (lon, lat); lengths in metres measured in ``metric_srid``; times are timestamptz.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import shapely
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.analysis import mapmatch
from spatial.errors import Conflict, InvalidInput, OutOfScope
from spatial.geometry import crs as crsmod
from spatial.store import audit, cases
from spatial.store import network as net
from spatial.store.openings import enclosure_scope
from spatial.store.patrols import grid_lanes
from spatial.store.scope import building_scope, grid_scope

DATUMS = ("EPSG:4326", "GCJ-02")
MAX_FIXES = 5000          # per batch
MAX_FIXES_PER_PATROL = 100_000
FUTURE_S = 300            # a fix this far ahead of the server clock is refused (phones' clocks drift a little)
BEFORE_START_S = 60
GAP_S = 30.0              # no fix for longer than this: the signal was lost
SUSPECT_M = 10.0          # the other datum must fit the network by this many metres (median) better, and by half
MATCHER = "hmm-viterbi (Newson & Krumm 2009), spatial.analysis.mapmatch"
SYSTEM = Principal(0, "gridgov", "admin")


@dataclass(frozen=True)
class Record:
    """A patrol record without its track (scores only; ``scores`` None while open)."""

    id: int
    worker: str
    grid_id: int
    grid_code: str
    status: str
    datum: str
    datum_used: str | None
    datum_suspect: bool
    started_at: datetime
    ended_at: datetime | None
    scores: dict[str, Any] | None
    reduced_at: datetime | None
    checkins: list[dict[str, Any]] = field(default_factory=list)
    case_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class FixReport:
    """What a batch of fixes did: stored, already stored (same instant), refused as future or before the start."""

    accepted: int
    duplicates: int
    future: int
    before_start: int


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(timezone.utc)


def _to_wgs(lon: np.ndarray, lat: np.ndarray, datum: str) -> tuple[np.ndarray, np.ndarray]:
    if datum == "GCJ-02":
        return crsmod.gcj02_to_wgs84(lon, lat)
    return np.asarray(lon, dtype=float), np.asarray(lat, dtype=float)


def _point_wgs(lon: float, lat: float, datum: str) -> tuple[float, float]:
    x, y = _to_wgs(np.array([lon]), np.array([lat]), datum)
    return float(np.ravel(x)[0]), float(np.ravel(y)[0])


def check_datum(datum: str) -> str:
    """The datum name as stored ('EPSG:4326' or 'GCJ-02'); InvalidInput otherwise."""
    parsed = crsmod.parse_crs(datum)
    name = "GCJ-02" if str(parsed).upper().startswith("GCJ") else "EPSG:4326" if parsed.is_wgs84 else None
    if name is None:
        raise InvalidInput(f"fixes must be in WGS 84 (EPSG:4326) or GCJ-02, not {datum}", code="patrol.datum",
                           datum=str(datum))
    return name


# -- writes --------------------------------------------------------------------------------------------------------

_VISIBLE = """(r.worker_id = :me OR :admin OR EXISTS (
    SELECT 1 FROM grid_assignments a WHERE a.user_id = :me AND a.grid_id = r.grid_id AND a.duty = 'leader'))"""


def _visible(who: Principal) -> dict[str, Any]:
    return {"me": who.user_id, "admin": who.role == "admin"}


def _own(session: Session, who: Principal, patrol_id: int, *, lock: bool = True):
    """The caller's own patrol row (locked); Forbidden unless a grid worker, OutOfScope for anybody else's or none."""
    who.require_role("grid_worker")
    row = session.execute(text("SELECT * FROM patrol_records WHERE id = :id AND worker_id = :me"
                               + (" FOR UPDATE" if lock else "")), {"id": patrol_id, "me": who.user_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"patrol {patrol_id} does not exist or is not yours", code="patrol.not_found", patrol=patrol_id)
    return row


def _open(session: Session, who: Principal, patrol_id: int):
    row = _own(session, who, patrol_id)
    if row.status != "open":
        raise Conflict(f"patrol {patrol_id} has ended ({row.status}); start a new one", code="patrol.ended",
                       patrol=patrol_id)
    return row


def start(session: Session, who: Principal, *, grid_id: int, datum: str, started_at: datetime | None = None,
          client_ref: str | None = None, now: datetime | None = None, open_hours: float = 12.0,
          metric_srid: int = 4547) -> Record:
    """Start a patrol of ``grid_id`` (one of the caller's grids). The same ``client_ref`` again answers the patrol
    already started. Conflict (``patrol.open``) while another patrol of the caller is open, unless that one is
    stale (no fix for ``open_hours``): it is then closed as abandoned first."""
    who.require_role("grid_worker")
    now = _now(now)
    datum = check_datum(datum)
    started_at = started_at or now
    if started_at > now + timedelta(seconds=FUTURE_S):
        raise InvalidInput("the patrol starts in the future: check the phone's clock", code="patrol.future")
    if client_ref:
        again = session.scalar(text("SELECT id FROM patrol_records WHERE worker_id = :me AND client_ref = :ref"),
                               {"me": who.user_id, "ref": client_ref})
        if again is not None:
            return get(session, who, again, audited=False)
    scope, params = grid_scope(who.area)
    if session.scalar(text(f"SELECT g.id FROM grids g WHERE g.id = :id AND g.retired_at IS NULL AND {scope}"),
                      {**params, "id": grid_id}) is None:
        raise OutOfScope(f"grid {grid_id} does not exist or is not one of your grids", code="patrol.grid",
                         grid=grid_id)
    running = session.execute(text("""
        SELECT r.id, greatest(r.started_at, (SELECT max(at) FROM patrol_fixes f WHERE f.patrol_id = r.id)) AS last
        FROM patrol_records r WHERE r.worker_id = :me AND r.status = 'open' FOR UPDATE"""),
        {"me": who.user_id}).one_or_none()
    if running is not None:
        if running.last > now - timedelta(hours=open_hours):
            raise Conflict(f"patrol {running.id} is still open: end it first", code="patrol.open", patrol=running.id)
        _finish(session, running.id, running.last, "abandoned", metric_srid=metric_srid)
    new_id = session.scalar(text("""
        INSERT INTO patrol_records (worker_id, grid_id, client_ref, datum, started_at)
        VALUES (:me, :grid, :ref, :datum, :at) RETURNING id"""),
        {"me": who.user_id, "grid": grid_id, "ref": client_ref, "datum": datum, "at": started_at})
    audit.record(session, who, "create", object_type="patrol_record", object_id=new_id)
    return get(session, who, new_id, audited=False)


def add_fixes(session: Session, who: Principal, patrol_id: int, fixes: Sequence[tuple[datetime, float, float,
              float | None]], *, now: datetime | None = None) -> FixReport:
    """Store fixes (at, lon, lat in the patrol's datum, accuracy metres or None) of the caller's open patrol.
    Fixes more than :data:`FUTURE_S` s in the future or :data:`BEFORE_START_S` s before the start are refused
    (counted); an instant already stored is skipped (counted as duplicate)."""
    now = _now(now)
    row = _open(session, who, patrol_id)
    if len(fixes) > MAX_FIXES:
        raise InvalidInput(f"at most {MAX_FIXES} fixes per batch, got {len(fixes)}: send them in parts",
                           code="patrol.batch", most=MAX_FIXES)
    late, soon = now + timedelta(seconds=FUTURE_S), row.started_at - timedelta(seconds=BEFORE_START_S)
    future = sum(1 for f in fixes if f[0] > late)
    early = sum(1 for f in fixes if f[0] < soon)
    good = [f for f in fixes if soon <= f[0] <= late]
    stored = session.scalar(text("SELECT count(*) FROM patrol_fixes WHERE patrol_id = :id"), {"id": patrol_id})
    if stored + len(good) > MAX_FIXES_PER_PATROL:
        raise InvalidInput(f"a patrol holds at most {MAX_FIXES_PER_PATROL} fixes: end this one and start another",
                           code="patrol.too_long", most=MAX_FIXES_PER_PATROL)
    accepted = 0
    if good:
        accepted = session.execute(text("""
            INSERT INTO patrol_fixes (patrol_id, at, lon, lat, accuracy_m)
            SELECT DISTINCT ON (u.at) :id, u.at, u.lon, u.lat, u.acc
            FROM unnest(CAST(:at AS timestamptz[]), CAST(:lon AS float8[]), CAST(:lat AS float8[]),
                        CAST(:acc AS real[])) AS u (at, lon, lat, acc)
            ORDER BY u.at
            ON CONFLICT DO NOTHING"""), {"id": patrol_id, "at": [f[0] for f in good], "lon": [f[1] for f in good],
                                         "lat": [f[2] for f in good], "acc": [f[3] for f in good]}).rowcount
    return FixReport(accepted, len(good) - accepted, future, early)


def check_in(session: Session, who: Principal, patrol_id: int, *, kind: str, target_id: int, lon: float, lat: float,
             datum: str | None = None, at: datetime | None = None, max_m: float = 50.0,
             now: datetime | None = None) -> tuple[dict[str, Any], bool]:
    """Check in at a building or checkpoint of the caller's scope from (lon, lat) in ``datum`` (default the
    patrol's). Returns (the check-in, whether it was new): a second check-in at the same target answers the first.
    InvalidInput (``patrol.checkin_far``) farther than ``max_m`` metres from the target."""
    now = _now(now)
    row = _open(session, who, patrol_id)
    at = at or now
    if at > now + timedelta(seconds=FUTURE_S):
        raise InvalidInput("the check-in is in the future: check the phone's clock", code="patrol.future")
    if at < row.started_at - timedelta(seconds=BEFORE_START_S):
        raise InvalidInput("the check-in is before the patrol started", code="patrol.before_start")
    wlon, wlat = _point_wgs(lon, lat, check_datum(datum or row.datum))
    if kind == "building":
        scope, params = building_scope(who.area)
        target = session.execute(text(f"""
            SELECT b.id, coalesce(b.name, b.code, '#' || b.id) AS name,
                   ST_Distance(b.footprint::geography, ST_SetSRID(ST_Point(:x, :y), 4326)::geography, false) AS d
            FROM buildings b WHERE b.id = :id AND {scope}"""), {**params, "id": target_id, "x": wlon, "y": wlat})
    elif kind == "checkpoint":
        scope, params = enclosure_scope(who)
        target = session.execute(text(f"""
            SELECT c.id, c.name,
                   ST_Distance(c.location::geography, ST_SetSRID(ST_Point(:x, :y), 4326)::geography, false) AS d
            FROM checkpoints c JOIN enclosures e ON e.id = c.enclosure_id AND {scope} WHERE c.id = :id"""),
            {**params, "id": target_id, "x": wlon, "y": wlat})
    else:
        raise InvalidInput("check in at a building or a checkpoint", code="patrol.checkin_kind")
    target = target.one_or_none()
    if target is None:
        raise OutOfScope(f"{kind} {target_id} does not exist or is not in your area", code="patrol.checkin_target",
                         kind=kind, target=target_id)
    if target.d > max_m:
        raise InvalidInput(f"you are {target.d:,.0f} m from {target.name}; check in within {max_m:g} m of it",
                           code="patrol.checkin_far", distance_m=round(float(target.d)), max_m=max_m,
                           name=target.name)
    made = session.execute(text("""
        INSERT INTO patrol_checkins (patrol_id, kind, target_id, at, location, distance_m)
        VALUES (:p, :kind, :t, :at, ST_SetSRID(ST_Point(:x, :y), 4326), :d)
        ON CONFLICT (patrol_id, kind, target_id) DO NOTHING RETURNING id"""),
        {"p": patrol_id, "kind": kind, "t": target_id, "at": at, "x": wlon, "y": wlat, "d": float(target.d)}).scalar()
    out = session.execute(text("""SELECT id, kind, target_id, at, distance_m FROM patrol_checkins
                                  WHERE patrol_id = :p AND kind = :kind AND target_id = :t"""),
                          {"p": patrol_id, "kind": kind, "t": target_id}).one()
    return {**out._asdict(), "name": target.name}, made is not None


def report_problem(session: Session, who: Principal, patrol_id: int, *, category: str, description: str,
                   lon: float, lat: float, datum: str | None = None, now: datetime | None = None,
                   duplicate_within_m: float = cases.DUPLICATE_WITHIN_M, metric_srid: int = 4547) -> cases.CaseView:
    """A case found on the caller's open patrol, at (lon, lat) in ``datum`` (default the patrol's), linked to it."""
    row = _open(session, who, patrol_id)
    wlon, wlat = _point_wgs(lon, lat, check_datum(datum or row.datum))
    view = cases.report_case(session, who, category=category, lon=wlon, lat=wlat, description=description, now=now,
                             duplicate_within_m=duplicate_within_m, metric_srid=metric_srid)
    session.execute(text("INSERT INTO patrol_cases (patrol_id, case_id) VALUES (:p, :c)"), {"p": patrol_id, "c": view.id})
    return view


def end(session: Session, who: Principal, patrol_id: int, *, ended_at: datetime | None = None,
        now: datetime | None = None, metric_srid: int = 4547, pass_m: float = 30.0) -> Record:
    """End the caller's patrol and score it. Ending an ended patrol answers it unchanged (an end sent twice from
    the offline queue). InvalidInput for an end before the start or in the future."""
    now = _now(now)
    row = _own(session, who, patrol_id)
    if row.status != "open":
        return get(session, who, patrol_id, audited=False)
    ended_at = ended_at or now
    if ended_at > now + timedelta(seconds=FUTURE_S):
        raise InvalidInput("the patrol ends in the future: check the phone's clock", code="patrol.future")
    if ended_at < row.started_at:
        raise InvalidInput("the patrol ends before it started", code="patrol.end_before_start")
    _finish(session, patrol_id, ended_at, "ended", metric_srid=metric_srid, pass_m=pass_m)
    audit.record(session, who, "end", object_type="patrol_record", object_id=patrol_id)
    return get(session, who, patrol_id, audited=False)


# -- scoring -------------------------------------------------------------------------------------------------------


def _finish(session: Session, patrol_id: int, ended_at: datetime, status: str, *, metric_srid: int = 4547,
            pass_m: float = 30.0) -> None:
    row = session.execute(text("SELECT * FROM patrol_records WHERE id = :id"), {"id": patrol_id}).one()
    fixes = session.execute(text("""SELECT extract(epoch FROM at) AS epoch, lon, lat FROM patrol_fixes
                                    WHERE patrol_id = :id AND at <= :end ORDER BY at"""),
                            {"id": patrol_id, "end": ended_at}).all()
    result = score(session, row, fixes, ended_at, metric_srid=metric_srid, pass_m=pass_m)
    session.execute(text("""
        UPDATE patrol_records SET status = :status, ended_at = :end, scores = CAST(:scores AS jsonb),
               datum_used = :used, datum_suspect = :suspect,
               track = ST_Multi(ST_GeomFromWKB(CAST(:wkb AS bytea), 4326))
        WHERE id = :id"""), {"id": patrol_id, "status": status, "end": ended_at, "scores": json.dumps(result.scores),
                             "used": result.datum_used, "suspect": result.suspect, "wkb": result.track_wkb})


@dataclass(frozen=True)
class Scored:
    scores: dict[str, Any]
    datum_used: str
    suspect: bool
    track_wkb: bytes | None


def _metric(lon: np.ndarray, lat: np.ndarray, srid: int) -> np.ndarray:
    x, y = crsmod.transform_xy(lon, lat, 4326, srid)
    return np.column_stack([np.atleast_1d(x), np.atleast_1d(y)])


def score(session: Session, row: Any, fixes: Sequence[Any], ended_at: datetime, *, metric_srid: int = 4547,
          pass_m: float = 30.0, params: mapmatch.Params = mapmatch.Params()) -> Scored:
    """Match and score a patrol (see the module docstring): ``row`` its patrol_records row, ``fixes`` rows of
    (epoch seconds, lon, lat) in the declared datum."""
    t = np.array([f.epoch for f in fixes], dtype=float)
    lon = np.array([f.lon for f in fixes], dtype=float)
    lat = np.array([f.lat for f in fixes], dtype=float)
    declared = row.datum
    other = "GCJ-02" if declared == "EPSG:4326" else "EPSG:4326"
    reads = {d: _to_wgs(lon, lat, d) for d in (declared, other)}
    lanes = grid_lanes(session, SYSTEM, grid_id=row.grid_id, metric_srid=metric_srid)
    network = None
    offsets: dict[str, float | None] = {declared: None, other: None}
    used = declared
    if len(t):
        box_lon = np.concatenate([reads[declared][0], reads[other][0]])
        box_lat = np.concatenate([reads[declared][1], reads[other][1]])
        lines = net.edge_lines(session, "walk", (box_lon.min(), box_lat.min(), box_lon.max(), box_lat.max()),
                               margin_m=2 * params.radius_m, metric_srid=metric_srid)
        network = mapmatch.build_network(lines.ids, lines.sources, lines.targets, lines.lines)
        for d, (x, y) in reads.items():
            dist = mapmatch.nearest_distances(network, _metric(x, y, metric_srid))
            offsets[d] = float(np.median(dist)) if np.isfinite(dist).any() else None
        a, b = offsets[declared], offsets[other]
        if a is not None and b is not None and a - b > SUSPECT_M and b < 0.5 * a:
            used = other
    suspect = used != declared
    xy = _metric(*reads[used], metric_srid) if len(t) else np.zeros((0, 2))
    cleaned = mapmatch.clean_track(xy, t, max_speed_mps=params.max_speed_mps)
    keep = cleaned.keep
    kt, kxy = t[keep], xy[keep]
    matched = mapmatch.match(network, kxy, kt, params) if network is not None else mapmatch.Match((), frozenset(), 0)
    # gaps: silence longer than GAP_S between kept fixes (and from the start / to the end)
    started = row.started_at.timestamp()
    stops = [started, *kt.tolist(), ended_at.timestamp()]
    gaps = [{"from": _iso(a), "to": _iso(b), "seconds": round(b - a)} for a, b in zip(stops, stops[1:], strict=False)
            if b - a > GAP_S]
    lane_length = {a.id: a.length for a in lanes.arcs}
    covered = sorted(e for e in matched.edges if e in lanes.required)
    total_m = sum(lane_length[e] for e in lanes.required)
    covered_m = sum(lane_length[e] for e in covered)
    lines_wgs = []
    for piece in matched.pieces:
        pts = np.array([(s[3], s[4]) for s in piece.states])
        if len(pts) >= 2:
            x, y = crsmod.transform_xy(pts[:, 0], pts[:, 1], metric_srid, 4326)
            lines_wgs.append(np.column_stack([x, y]))
    track = shapely.multilinestrings(lines_wgs) if lines_wgs else None
    passed = total_b = 0
    building_ids: list[int] = []
    counts = session.execute(text("""
        SELECT count(*) AS total,
               coalesce(array_agg(b.id ORDER BY b.id) FILTER (WHERE CAST(:wkb AS bytea) IS NOT NULL AND ST_DWithin(
                   ST_Transform(b.footprint, :srid), ST_Transform(ST_GeomFromWKB(:wkb, 4326), :srid), :m)),
                   '{}') AS passed
        FROM buildings b WHERE b.grid_id = :grid"""),
        {"grid": row.grid_id, "srid": metric_srid, "m": pass_m,
         "wkb": shapely.to_wkb(track) if track is not None else None}).one()
    total_b, building_ids = counts.total, list(counts.passed)
    passed = len(building_ids)
    checkins = session.execute(text("""SELECT count(*) FILTER (WHERE kind = 'building') AS b,
                                              count(*) FILTER (WHERE kind = 'checkpoint') AS c
                                       FROM patrol_checkins WHERE patrol_id = :id"""), {"id": row.id}).one()
    found = session.scalar(text("SELECT count(*) FROM patrol_cases WHERE patrol_id = :id"), {"id": row.id})
    tracked = float(sum(b - a for a, b in zip(kt, kt[1:], strict=False) if b - a <= GAP_S))
    scores = {
        "matcher": MATCHER,
        "duration_s": round(ended_at.timestamp() - started),
        "tracked_s": round(tracked),
        "distance_m": round(matched.length_m, 1),
        "fixes": {"received": int(len(t)), "used": int(len(keep)), "too_fast": cleaned.too_fast,
                  "same_time": cleaned.same_time, "out_of_order": cleaned.out_of_order,
                  "jumps": len(cleaned.jumps), "off_network": matched.unmatched},
        "gaps": gaps[:200],
        "gap_s": sum(g["seconds"] for g in gaps),
        "lanes": {"total": len(lanes.required), "covered": len(covered), "total_m": round(total_m, 1),
                  "covered_m": round(covered_m, 1), "share": round(covered_m / total_m, 4) if total_m else None,
                  "ids": covered},
        "buildings": {"total": total_b, "passed": passed, "within_m": pass_m, "ids": building_ids,
                      "share": round(passed / total_b, 4) if total_b else None},
        "checkins": {"buildings": checkins.b, "checkpoints": checkins.c},
        "cases": found,
        "datum": {"declared": declared, "used": used, "suspect": suspect,
                  "median_offset_m": {k: (round(v, 1) if v is not None else None) for k, v in offsets.items()}},
    }
    return Scored(scores, used, suspect, shapely.to_wkb(track) if track is not None else None)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat()


# -- reads ---------------------------------------------------------------------------------------------------------

_SELECT = """SELECT r.id, u.username AS worker, r.grid_id, g.code AS grid_code, r.status, r.datum, r.datum_used,
                    r.datum_suspect, r.started_at, r.ended_at, r.scores, r.reduced_at
             FROM patrol_records r JOIN users u ON u.id = r.worker_id JOIN grids g ON g.id = r.grid_id"""


def get(session: Session, who: Principal, patrol_id: int, *, audited: bool = True) -> Record:
    """One record with its check-ins and case ids (no track). OutOfScope unless the caller may see it."""
    row = session.execute(text(f"{_SELECT} WHERE r.id = :id AND {_VISIBLE}"),
                          {"id": patrol_id, **_visible(who)}).one_or_none()
    if row is None:
        raise OutOfScope(f"patrol {patrol_id} does not exist or is not yours to see", code="patrol.not_found",
                         patrol=patrol_id)
    checkins = [r._asdict() for r in session.execute(text("""
        SELECT id, kind, target_id, at, distance_m FROM patrol_checkins WHERE patrol_id = :id ORDER BY at, id"""),
        {"id": patrol_id})]
    case_ids = list(session.scalars(text("SELECT case_id FROM patrol_cases WHERE patrol_id = :id ORDER BY case_id"),
                                    {"id": patrol_id}))
    if audited:
        audit.record(session, who, "read", object_type="patrol_record", object_id=patrol_id)
    return Record(**row._asdict(), checkins=checkins, case_ids=case_ids)


def list_records(session: Session, who: Principal, *, worker: str | None = None, grid_id: int | None = None,
                 limit: int = 100) -> list[Record]:
    """Records the caller may see, newest first (scores, no track); one audit row naming them."""
    rows = session.execute(text(f"""{_SELECT} WHERE {_VISIBLE}
        AND (CAST(:worker AS text) IS NULL OR u.username = :worker) AND (CAST(:grid AS integer) IS NULL OR r.grid_id = :grid)
        ORDER BY r.started_at DESC, r.id DESC LIMIT :limit"""),
        {**_visible(who), "worker": worker, "grid": grid_id, "limit": limit}).all()
    out = [Record(**r._asdict()) for r in rows]
    if out:
        audit.record(session, who, "read", object_type="patrol_record", object_id=[r.id for r in out])
    return out


def track(session: Session, who: Principal, patrol_id: int) -> dict[str, Any]:
    """The record's track: fixes as sent converted to EPSG:4326 with the datum used (or declared while open),
    the matched route, check-in positions. After retention: ``reduced_at`` set and no positions. Audited."""
    record = get(session, who, patrol_id, audited=False)
    datum = record.datum_used or record.datum
    fixes = session.execute(text("SELECT at, lon, lat, accuracy_m FROM patrol_fixes WHERE patrol_id = :id ORDER BY at"),
                            {"id": patrol_id}).all()
    lon, lat = _to_wgs(np.array([f.lon for f in fixes]), np.array([f.lat for f in fixes]), datum)
    route = session.scalar(text("SELECT ST_AsGeoJSON(track, 7) FROM patrol_records WHERE id = :id"), {"id": patrol_id})
    checkins = session.execute(text("""SELECT kind, target_id, at, ST_X(location) AS lon, ST_Y(location) AS lat
                                       FROM patrol_checkins WHERE patrol_id = :id ORDER BY at, id"""),
                               {"id": patrol_id}).all()
    audit.record(session, who, "read", object_type="patrol_track", object_id=patrol_id, fields=["track"])
    return {"id": patrol_id, "datum": datum, "reduced_at": record.reduced_at,
            "fixes": [{"at": f.at, "lon": float(x), "lat": float(y), "accuracy_m": f.accuracy_m}
                      for f, x, y in zip(fixes, np.atleast_1d(lon), np.atleast_1d(lat), strict=True)],
            "route": json.loads(route) if route else None,
            "checkins": [c._asdict() for c in checkins if c.lon is not None]}


# -- retention -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Pruned:
    abandoned: list[int]
    reduced: list[int]


def prune(session: Session, *, days: int, open_hours: float, now: datetime | None = None,
          metric_srid: int = 4547) -> Pruned:
    """Close patrols with no fix for ``open_hours`` as abandoned (scored up to their last fix), then reduce the
    records ended more than ``days`` ago to their scores: fixes deleted, route and check-in positions cleared.
    One audit row per step, by 'gridgov'."""
    now = _now(now)
    stale = session.execute(text("""
        SELECT r.id, greatest(r.started_at, (SELECT max(at) FROM patrol_fixes f WHERE f.patrol_id = r.id)) AS last
        FROM patrol_records r WHERE r.status = 'open' FOR UPDATE""")).all()
    abandoned = [r.id for r in stale if r.last <= now - timedelta(hours=open_hours)]
    for r in stale:
        if r.id in abandoned:
            _finish(session, r.id, r.last, "abandoned", metric_srid=metric_srid)
    reduced = list(session.scalars(text("""
        UPDATE patrol_records SET track = NULL, reduced_at = :now
        WHERE reduced_at IS NULL AND status <> 'open' AND ended_at < :before RETURNING id"""),
        {"now": now, "before": now - timedelta(days=days)}))
    if reduced:
        session.execute(text("DELETE FROM patrol_fixes WHERE patrol_id = ANY(CAST(:ids AS bigint[]))"), {"ids": reduced})
        session.execute(text("UPDATE patrol_checkins SET location = NULL WHERE patrol_id = ANY(CAST(:ids AS bigint[]))"),
                        {"ids": reduced})
    for action, ids in (("abandon", abandoned), ("reduce", reduced)):
        if ids:
            audit.record(session, None, action, actor="gridgov", object_type="patrol_record", object_id=ids,
                         purpose=f"retention: tracks kept {days} days, open patrols {open_hours:g} hours")
    return Pruned(sorted(abandoned), sorted(reduced))
