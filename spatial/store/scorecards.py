"""Scorecards (绩效考核, issue 17 §3, decision 0024): the raw measures of every grid worker and every grid of the
caller's area over a period, one grouped SQL statement per measure.

**Period.** ``date_from``..``date_to`` inclusive, Asia/Shanghai days, as the case figures read it
(:func:`spatial.store.case_figures.period`: instants [from 00:00, to + 1 day 00:00), at most three years).

**Workload** (a figure of *now*, not of the period: assignments carry no history):

* a grid's ``households``: per building the ledger's household rows, or the building's ``households`` figure when
  it has none (as the coverage report counts them); ``urban_village_households`` those in buildings flagged
  ``urban_village`` (城中村);
* a worker's ``households``: Σ over their current grids of the grid's households ÷ the grid's number of grid
  workers (a grid of 600 households served by two workers is 300 each); the same for urban-village households.

**Measures** (per worker: their own acts; per grid: everyone's acts in the grid):

* ``households_visited``: distinct households with a campaign visit (``campaign_visits.visited_at``) in the
  period; ``persons_visited``: the sum of their ``households.residents``;
* ``campaign_targets`` / ``campaign_visited``: households targeted by campaigns running during the period
  (created before its end, not closed before its start) in the worker's grids / the grid, and those of them
  visited in the period (by anyone: coverage is the grid's state);
* ``patrols``: ended patrol records (ended in the period); ``lanes_covered``: distinct lanes (walking-network
  edges of :func:`spatial.store.patrols.grid_lanes`) covered by at least one of them (``scores.lanes.ids``);
  ``lanes_total``: Σ over the worker's grids (the grid) of its lane count from its latest scored patrol
  (any period; a grid never patrolled contributes none: its lanes are not known without matching);
* ``cases_found``: cases reported by the worker (``reporter_user``; per grid: by any account) in the period,
  duplicates excluded;
* cases handled (``cases_due``, ``cases_closed``, ``cases_on_time``, ``on_time_rate``, ``avg_satisfaction``,
  ``rated``): exactly the case figures (:func:`spatial.store.case_figures.case_figures`, ``by='worker'`` /
  ``'grid'``): the cases due in the period, the worker being the case's assignee; not redefined here;
* ``tasks_due`` / ``tasks_done`` / ``tasks_on_time``: tasks (:mod:`spatial.store.tasks`) due in the period, those
  done (by now), those done by the end of their due day (Asia/Shanghai).

**Who.** Planners, inspectors (and admins) get every grid worker and grid of their area; a grid worker gets their
own card and their grids' cards; every other role Forbidden. Worker names are staff, not residents: no masking,
but a card is a judgement of a person's work, so every answer is audited (``read_scorecards``, object the period).
No household or person is named; household counts are workload figures (as on the grids layer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.geometry.codes import scope_prefix
from spatial.store import audit
from spatial.store.case_figures import case_figures, period
from spatial.store.scope import grid_scope, prefix_bounds, prefix_range
from spatial.worktime import LOCAL

READ_ROLES = ("planner", "inspector", "grid_worker")

MEASURES = ("households", "urban_village_households", "households_visited", "persons_visited", "campaign_targets",
            "campaign_visited", "patrols", "lanes_covered", "lanes_total", "cases_found", "cases_due", "cases_closed",
            "cases_on_time", "on_time_rate", "rated", "avg_satisfaction", "tasks_due", "tasks_done", "tasks_on_time")


@dataclass
class Card:
    """The measures of one worker (``key`` the user name) or grid (``key`` the grid code). ``community`` the
    community code the card is ranked in (a worker's: of their first grid by code)."""

    kind: str
    key: str
    label: str | None
    community: str | None
    grids: list[str] = field(default_factory=list)
    households: float = 0.0
    urban_village_households: float = 0.0
    households_visited: int = 0
    persons_visited: int = 0
    campaign_targets: int = 0
    campaign_visited: int = 0
    patrols: int = 0
    lanes_covered: int = 0
    lanes_total: int = 0
    cases_found: int = 0
    cases_due: int = 0
    cases_closed: int = 0
    cases_on_time: int = 0
    on_time_rate: float | None = None
    rated: int = 0
    avg_satisfaction: float | None = None
    tasks_due: int = 0
    tasks_done: int = 0
    tasks_on_time: int = 0


@dataclass
class Measures:
    date_from: date
    date_to: date
    workers: list[Card]
    grids: list[Card]


_BUILDING_HOUSEHOLDS = """
    SELECT b.grid_id, coalesce(sum(coalesce(nullif(h.n, 0), b.households, 0)), 0) AS households,
           coalesce(sum(coalesce(nullif(h.n, 0), b.households, 0)) FILTER (WHERE b.urban_village), 0) AS uv
    FROM buildings b LEFT JOIN (SELECT building_id, count(*) AS n FROM households GROUP BY building_id) h
         ON h.building_id = b.id
    WHERE b.grid_id = ANY(:grid_ids) GROUP BY b.grid_id"""


def measures(session: Session, who: Principal, *, date_from: date, date_to: date,
             division: str | None = None) -> Measures:
    """The cards of the caller's area (module docstring), optionally within ``division``: a 12-digit division code
    (its grids and their workers) or a 14-digit grid code (that grid and its workers); InvalidInput otherwise.
    Planners and inspectors naming a division outside their area: Forbidden (``scope.outside_area``); a grid
    worker naming another's grid finds nothing. Ordered by key."""
    who.require_role(*READ_ROLES)
    start, end = period(date_from, date_to)
    area, params = grid_scope(who.area)
    if division is not None:
        if who.role != "grid_worker":
            who.require_scope(division)  # a planner far away naming another's division: Forbidden, not empty
        if re.fullmatch(r"\d{14}", division):
            area += " AND g.code = :grid_code"
            params = {**params, "grid_code": division}
        else:
            try:
                prefix = scope_prefix(division)
            except ValueError:
                raise InvalidInput(f"division must be a 12-digit division code or a 14-digit grid code, got "
                                   f"{division!r}", code="scorecards.division", field="division") from None
            area += " AND " + prefix_range("g.community_code")
            params = {**params, **prefix_bounds(prefix)}
    grids = session.execute(text(f"""
        SELECT g.id, g.code, g.name, g.community_code FROM grids g
        WHERE g.retired_at IS NULL AND {area} ORDER BY g.code"""), params).all()
    grid_ids = [g.id for g in grids]
    own = "AND u.id = :me" if who.role == "grid_worker" else ""
    assignments = session.execute(text(f"""
        SELECT u.id AS user_id, u.username, u.display_name, ga.grid_id FROM grid_assignments ga
        JOIN users u ON u.id = ga.user_id
        WHERE ga.grid_id = ANY(:grid_ids) AND u.active AND u.role = 'grid_worker' {own}
        ORDER BY u.username"""), {"grid_ids": grid_ids, "me": who.user_id}).all()
    staff = session.execute(text("""
        SELECT ga.grid_id, count(*) AS n FROM grid_assignments ga JOIN users u ON u.id = ga.user_id
        WHERE ga.grid_id = ANY(:grid_ids) AND u.active AND u.role = 'grid_worker' GROUP BY ga.grid_id"""),
        {"grid_ids": grid_ids}).all()
    staff_of = {r.grid_id: r.n for r in staff}
    p = {"grid_ids": grid_ids, "start": start, "end": end}
    load = {r.grid_id: r for r in session.execute(text(_BUILDING_HOUSEHOLDS), p)}

    by_grid = {g.id: Card("grid", g.code, g.name, g.community_code, [g.code]) for g in grids}
    for gid, card in by_grid.items():
        if gid in load:
            card.households, card.urban_village_households = float(load[gid].households), float(load[gid].uv)
    workers: dict[int, Card] = {}
    grids_of: dict[int, list[int]] = {}
    code_of = {g.id: g.code for g in grids}
    community_of = {g.id: g.community_code for g in grids}
    for a in assignments:
        card = workers.setdefault(a.user_id, Card("worker", a.username, a.display_name, community_of[a.grid_id]))
        card.grids.append(code_of[a.grid_id])
        grids_of.setdefault(a.user_id, []).append(a.grid_id)
        share = staff_of.get(a.grid_id, 1)
        if a.grid_id in load:
            card.households += float(load[a.grid_id].households) / share
            card.urban_village_households += float(load[a.grid_id].uv) / share
    names = {c.key: uid for uid, c in workers.items()}
    p.update(user_ids=list(workers), names=list(names))

    def put(rows, cards: dict, key: str) -> None:
        for r in rows:
            card = cards.get(getattr(r, key))
            if card is not None:
                for name, value in r._mapping.items():
                    if name != key and value is not None:
                        setattr(card, name, value)

    # visits: per worker (their own) and per grid (the target's grid at campaign open)
    visits = """SELECT q.key, count(*) AS households_visited, coalesce(sum(h.residents), 0) AS persons_visited
                FROM (SELECT DISTINCT {k} AS key, v.household_id FROM campaign_visits v {j}
                      WHERE v.visited_at >= :start AND v.visited_at < :end AND {w}) q
                JOIN households h ON h.id = q.household_id GROUP BY q.key"""
    put(session.execute(text(visits.format(k="v.worker", j="", w="v.worker = ANY(:names)")), p),
        {c.key: c for c in workers.values()}, "key")
    put(session.execute(text(visits.format(k="t.grid_id", j="JOIN campaign_targets t USING (campaign_id, household_id)",
                                           w="t.grid_id = ANY(:grid_ids)")), p), by_grid, "key")

    # campaign coverage of the targets in the grid during the period
    targets = """SELECT t.grid_id, count(*) AS campaign_targets,
                        count(*) FILTER (WHERE EXISTS (SELECT 1 FROM campaign_visits v WHERE v.campaign_id =
                            t.campaign_id AND v.household_id = t.household_id AND v.visited_at >= :start
                            AND v.visited_at < :end)) AS campaign_visited
                 FROM campaign_targets t JOIN campaigns c ON c.id = t.campaign_id
                 WHERE t.grid_id = ANY(:grid_ids) AND c.created_at < :end
                   AND (c.closed_at IS NULL OR c.closed_at >= :start) GROUP BY t.grid_id"""
    coverage = session.execute(text(targets), p).all()
    put(coverage, by_grid, "grid_id")
    cov = {r.grid_id: r for r in coverage}
    for uid, gs in grids_of.items():
        workers[uid].campaign_targets = sum(cov[g].campaign_targets for g in gs if g in cov)
        workers[uid].campaign_visited = sum(cov[g].campaign_visited for g in gs if g in cov)

    # patrols: ended in the period; distinct lanes covered; the lanes of the grid from its latest scored patrol
    patrolled = """SELECT {k} AS key, count(DISTINCT r.id) AS patrols,
                          count(DISTINCT r.grid_id || ':' || lane.id) AS lanes_covered
                   FROM patrol_records r
                   LEFT JOIN LATERAL jsonb_array_elements_text(r.scores->'lanes'->'ids') AS lane(id) ON true
                   WHERE r.status = 'ended' AND r.ended_at >= :start AND r.ended_at < :end AND {w} GROUP BY 1"""
    put(session.execute(text(patrolled.format(k="r.worker_id", w="r.worker_id = ANY(:user_ids)")), p), workers,
        "key")
    put(session.execute(text(patrolled.format(k="r.grid_id", w="r.grid_id = ANY(:grid_ids)")), p), by_grid, "key")
    lanes = {r.grid_id: r.total for r in session.execute(text("""
        SELECT DISTINCT ON (grid_id) grid_id, (scores->'lanes'->>'total')::int AS total FROM patrol_records
        WHERE grid_id = ANY(:grid_ids) AND scores IS NOT NULL ORDER BY grid_id, ended_at DESC"""), p)}
    for gid, card in by_grid.items():
        card.lanes_total = lanes.get(gid) or 0
    for uid, gs in grids_of.items():
        workers[uid].lanes_total = sum(lanes.get(g) or 0 for g in gs)

    # cases found: reported by the worker / by any account in the grid
    found = """SELECT {k} AS key, count(*) AS cases_found FROM cases c
               WHERE c.duplicate_of IS NULL AND c.reporter_user IS NOT NULL AND c.reported_at >= :start
                 AND c.reported_at < :end AND {w} GROUP BY 1"""
    put(session.execute(text(found.format(k="c.reporter_user", w="c.reporter_user = ANY(:names)")), p),
        {c.key: c for c in workers.values()}, "key")
    put(session.execute(text(found.format(k="c.grid_id", w="c.grid_id = ANY(:grid_ids)")), p), by_grid, "key")

    # cases handled: the case figures, not redefined
    for by, cards in (("worker", {c.key: c for c in workers.values()}), ("grid", {c.key: c for c in by_grid.values()})):
        for row in case_figures(session, who, by=by, date_from=date_from, date_to=date_to).rows:
            card = cards.get(row.key)
            if card is not None:
                card.cases_due, card.cases_closed, card.cases_on_time = row.due, row.closed, row.closed_on_time
                card.on_time_rate, card.rated, card.avg_satisfaction = row.on_time_rate, row.rated, \
                    row.avg_satisfaction

    # tasks due in the period
    tasks = """SELECT {k} AS key, count(*) AS tasks_due, count(done_at) AS tasks_done,
                      count(*) FILTER (WHERE (done_at AT TIME ZONE 'Asia/Shanghai')::date <= due) AS tasks_on_time
               FROM tasks WHERE due >= :from_day AND due <= :to_day AND {w} GROUP BY 1"""
    p.update(from_day=date_from, to_day=date_to)
    put(session.execute(text(tasks.format(k="assignee_id", w="assignee_id = ANY(:user_ids)")), p), workers, "key")
    put(session.execute(text(tasks.format(k="grid_id", w="grid_id = ANY(:grid_ids)")), p), by_grid, "key")

    worker_cards = sorted(workers.values(), key=lambda c: c.key)
    grid_cards = list(by_grid.values())  # a grid worker's area is their grids: their grids' cards
    audit.record_read(session, who, "read_scorecards", object_type="scorecards",
                      object_id=f"{division or 'area'}:{date_from}..{date_to}",
                      fields=[c.key for c in worker_cards][:200])
    return Measures(date_from, date_to, worker_cards, grid_cards)


def today() -> date:
    """Today in Asia/Shanghai (the default end of a period)."""
    return datetime.now(LOCAL).date()


# key -> (中文, English, definition 口径): the page and the exports state these
COLUMNS: dict[str, tuple[str, str, str]] = {
    "households": ("负责户数", "households", "当前负责网格的户数（台账户数，无台账时取楼栋户数）÷ 网格网格员人数"),
    "urban_village_households": ("其中城中村户数", "of them in urban villages", "城中村楼栋中的户数，同上分摊"),
    "households_visited": ("走访户数", "households visited", "期内有入户走访记录的不同户数"),
    "persons_visited": ("走访人数", "persons visited", "所走访户的在册人数之和"),
    "campaign_targets": ("专项任务户数", "campaign targets", "期内进行中的专项走访在本网格的目标户数"),
    "campaign_visited": ("专项已走访户数", "campaign targets visited", "其中期内已走访（任何网格员）"),
    "patrols": ("巡查次数", "patrols", "期内结束的巡查记录数"),
    "lanes_covered": ("巡查覆盖巷道数", "lanes covered", "期内巡查至少走过一次的不同巷道（步行路网边）"),
    "lanes_total": ("网格巷道数", "lanes of the grids", "各网格最近一次巡查评分时的巷道总数（未巡查过的网格不计）"),
    "cases_found": ("发现事件数", "cases found", "期内本人（网格：任何工作人员）上报的事件，重复事件不计"),
    "cases_due": ("应结案数", "cases due", "同事件考核指标：期内应结案的事件（处置人为本人）"),
    "cases_closed": ("结案数", "cases closed", "同事件考核指标"),
    "cases_on_time": ("按期结案数", "closed on time", "同事件考核指标：各环节均未超时"),
    "on_time_rate": ("按期结案率", "on-time rate", "按期结案数 ÷ 应结案数"),
    "rated": ("回访评价数", "rated", "有满意度评价的结案事件"),
    "avg_satisfaction": ("平均满意度", "mean satisfaction", "1–5 分"),
    "tasks_due": ("应完成任务数", "tasks due", "期内到期的任务"),
    "tasks_done": ("已完成任务数", "tasks done", "其中已完成"),
    "tasks_on_time": ("按期完成任务数", "tasks done on time", "到期日当天（北京时间）结束前完成"),
}
