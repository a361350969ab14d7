"""The fair comparison of scorecards (绩效考核, issue 17 §3, decision 0024): plain numbers in, shares and ranks out.

Raw counts reward big grids: a worker with 600 households who visited 300 did the same share of their work as
one with 250 who visited 125. Every indicator is therefore **a share of the workload it depends on** (0–1):

==================  ==========================================================  ======
indicator           formula                                                     weight
==================  ==========================================================  ======
``visit_share``     households visited ÷ households (the worker's share of       0.30
                    their grids' households, capped at 1)
``lane_share``      distinct lanes covered ÷ lanes of the grids                 0.20
``on_time_rate``    cases closed on time ÷ cases due (the case figures' 按期结案率) 0.30
``task_share``      tasks done by their due day ÷ tasks due                       0.10
``satisfaction``    (mean satisfaction − 1) ÷ 4 (1–5 mapped to 0–1)              0.10
==================  ==========================================================  ======

An indicator without a denominator (no case due, no lane known, no task, no rating) is left out and the weights
of the others are renormalised: nobody is marked down for work that was not there.

**Difficulty.** Urban villages (城中村: rented rooms, people moving in and out, lanes without names) take more
effort per household than estates. The composite is multiplied by ``1 + URBAN_VILLAGE_WEIGHT × u``, ``u`` the
share of the workload's households in urban-village buildings (0–1), ``URBAN_VILLAGE_WEIGHT`` 0.2: a card entirely
in an urban village scores up to 20 % more for the same shares.

**Composite and rank.** ``composite = difficulty × Σ wᵢ·xᵢ ÷ Σ wᵢ`` over the indicators present (4 places; None
with none present). Cards are ranked within their community (peers under the same conditions and leadership) by
composite, highest first, competition ranking (equal composites share a rank, the next rank skips); cards
without a composite have no rank.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

WEIGHTS = {"visit_share": 0.30, "lane_share": 0.20, "on_time_rate": 0.30, "task_share": 0.10,
           "satisfaction": 0.10}
URBAN_VILLAGE_WEIGHT = 0.2
PLACES = 4


@dataclass(frozen=True)
class Workload:
    """What a card's indicators are computed from (the raw measures of :mod:`spatial.store.scorecards`)."""

    key: str
    group: str | None
    households: float
    urban_village_households: float
    households_visited: int
    lanes_covered: int
    lanes_total: int
    on_time_rate: float | None
    tasks_due: int
    tasks_on_time: int
    avg_satisfaction: float | None


@dataclass(frozen=True)
class Score:
    key: str
    visit_share: float | None
    lane_share: float | None
    on_time_rate: float | None
    task_share: float | None
    satisfaction: float | None
    difficulty: float
    composite: float | None
    rank: int | None


def _share(part: float, whole: float) -> float | None:
    return round(min(1.0, part / whole), PLACES) if whole else None


def score(w: Workload) -> Score:
    """The indicators, difficulty and composite of one card (rank None; :func:`rank` fills it)."""
    values = {
        "visit_share": _share(w.households_visited, w.households),
        "lane_share": _share(w.lanes_covered, w.lanes_total),
        "on_time_rate": w.on_time_rate,
        "task_share": _share(w.tasks_on_time, w.tasks_due),
        "satisfaction": None if w.avg_satisfaction is None else round((w.avg_satisfaction - 1) / 4, PLACES),
    }
    u = min(1.0, w.urban_village_households / w.households) if w.households else 0.0
    difficulty = round(1 + URBAN_VILLAGE_WEIGHT * u, PLACES)
    present = {k: v for k, v in values.items() if v is not None}
    weight = sum(WEIGHTS[k] for k in present)
    composite = round(difficulty * sum(WEIGHTS[k] * v for k, v in present.items()) / weight, PLACES) \
        if weight else None
    return Score(w.key, **values, difficulty=difficulty, composite=composite, rank=None)


def rank(workloads: Iterable[Workload]) -> list[Score]:
    """:func:`score` of every card, ranked within its ``group`` (module docstring), in the input order."""
    workloads = list(workloads)
    scores = [score(w) for w in workloads]
    groups: dict[str | None, list[int]] = defaultdict(list)
    for i, w in enumerate(workloads):
        if scores[i].composite is not None:
            groups[w.group].append(i)
    ranks: dict[int, int] = {}
    for members in groups.values():
        members.sort(key=lambda i: -scores[i].composite)
        for place, i in enumerate(members):
            prev = members[place - 1] if place else None
            ranks[i] = ranks[prev] if prev is not None and scores[prev].composite == scores[i].composite else place + 1
    return [Score(**{**s.__dict__, "rank": ranks.get(i)}) for i, s in enumerate(scores)]


# key -> (中文, English, definition 口径): the page and the exports state these
COLUMNS: dict[str, tuple[str, str, str]] = {
    "visit_share": ("走访率", "visit share", "走访户数 ÷ 负责户数（最多 1）"),
    "lane_share": ("巷道覆盖率", "lane share", "巡查覆盖巷道数 ÷ 网格巷道数"),
    "on_time_rate": ("按期结案率", "on-time rate", "按期结案数 ÷ 应结案数"),
    "task_share": ("任务按期完成率", "task share", "按期完成任务数 ÷ 应完成任务数"),
    "satisfaction": ("满意度得分", "satisfaction score", "(平均满意度 − 1) ÷ 4"),
    "difficulty": ("难度系数", "difficulty", f"1 + {URBAN_VILLAGE_WEIGHT} × 城中村户数占比"),
    "composite": ("综合得分", "composite",
                  "难度系数 × Σ 权重×指标 ÷ Σ 权重（无分母的指标不计，权重：" +
                  "、".join(f"{k} {v}" for k, v in WEIGHTS.items()) + "）"),
    "rank": ("社区内排名", "rank in community", "按综合得分从高到低，得分相同名次相同"),
}
