"""Scorecards (绩效考核, issue 17 §3, decision 0024): per grid worker and per grid of the caller's area, the measures
of a period (:mod:`spatial.store.scorecards`) and the fair comparison (:mod:`spatial.analysis.scorecards`), as JSON
for the page (/scorecards) or as a spreadsheet for the assessment."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from api.deps import CurrentUser, SessionDep
from api.downloads import attachment, scratch
from spatial.analysis import scorecards as fair
from spatial.io.forms import MEDIA_TYPES, write_table
from spatial.store import scorecards as store
from spatial.store.case_figures import FIRST_DAY, LAST_DAY

router = APIRouter(prefix="/api/scorecards", tags=["scorecards · 网格考核"])

Division = Annotated[str | None, Query(pattern=r"^[0-9]{12}([0-9]{2})?$",
                                       description="a 12-digit division code or a 14-digit grid code within your "
                                                   "area (default: all of it)")]
From = Annotated[date | None, Query(alias="from", ge=FIRST_DAY, le=LAST_DAY,
                                    description="first day, Asia/Shanghai (default: the first of the month of `to`)")]
To = Annotated[date | None, Query(alias="to", ge=FIRST_DAY, le=LAST_DAY,
                                  description="last day, included (default: today)")]


class Column(BaseModel):
    key: str
    zh: str
    en: str
    definition: str = Field(description="the definition (口径), in Chinese")


class CardPublic(BaseModel):
    kind: Literal["worker", "grid"]
    key: str = Field(description="the worker's user name or the grid code")
    label: str | None = Field(description="display name or grid name")
    community: str | None = Field(description="the community the card is ranked in")
    grids: list[str]
    measures: dict[str, float | int | None] = Field(description="the raw measures (columns `measures`)")
    scores: dict[str, float | int | None] = Field(description="shares 0–1, difficulty, composite, rank "
                                                              "(columns `scores`)")


class ScorecardsPublic(BaseModel):
    date_from: date = Field(serialization_alias="from")
    date_to: date = Field(serialization_alias="to")
    measures: list[Column]
    scores: list[Column]
    weights: dict[str, float]
    urban_village_weight: float
    formula: str = Field(description="the fair comparison, in words")
    workers: list[CardPublic]
    grids: list[CardPublic]


FORMULA = ("每项指标按其对应的工作量折算为比例（走访户数 ÷ 负责户数等），综合得分 = 难度系数 × Σ 权重×指标 ÷ Σ 权重，"
           f"难度系数 = 1 + {fair.URBAN_VILLAGE_WEIGHT} × 城中村户数占比；社区内按综合得分排名。"
           "Each measure is divided by the workload it depends on; composite = difficulty × weighted mean of the "
           "shares present; difficulty = 1 + 0.2 × urban-village share; ranked within the community.")


def _ranked(cards: list[store.Card]) -> list[tuple[store.Card, fair.Score]]:
    loads = [fair.Workload(c.key, c.community, c.households, c.urban_village_households, c.households_visited,
                           c.lanes_covered, c.lanes_total, c.on_time_rate, c.tasks_due, c.tasks_on_time,
                           c.avg_satisfaction) for c in cards]
    return list(zip(cards, fair.rank(loads), strict=True))


def _public(card: store.Card, score: fair.Score) -> CardPublic:
    return CardPublic(kind=card.kind, key=card.key, label=card.label, community=card.community, grids=card.grids,
                      measures={k: (round(v, 2) if isinstance(v, float) else v)
                                for k in store.COLUMNS for v in [getattr(card, k)]},
                      scores={k: getattr(score, k) for k in fair.COLUMNS})


def _read(session, who, division, date_from, date_to):
    date_to = date_to or max(store.today(), date_from or store.today())
    date_from = date_from or date_to.replace(day=1)
    found = store.measures(session, who, date_from=date_from, date_to=date_to, division=division)
    return found, _ranked(found.workers), _ranked(found.grids)


@router.get("", response_model=ScorecardsPublic, response_model_by_alias=True,
            summary="Scorecards of the grid workers and grids of your area (绩效考核)",
            description="Planners, inspectors and admins: every grid worker and grid of their area (or of "
                        "`division`, a division or one grid); a grid worker: their own card and their grids'. "
                        "Measures and the fair comparison are defined in `measures`, `scores` and `formula` "
                        "(spatial.store.scorecards, spatial.analysis.scorecards). A period is at most 1,099 days. "
                        "Audited.")
def scorecards(session: SessionDep, who: CurrentUser, division: Division = None, date_from: From = None,
               date_to: To = None) -> ScorecardsPublic:
    found, workers, grids = _read(session, who, division, date_from, date_to)
    return ScorecardsPublic(
        date_from=found.date_from, date_to=found.date_to,
        measures=[Column(key=k, zh=z, en=e, definition=d) for k, (z, e, d) in store.COLUMNS.items()],
        scores=[Column(key=k, zh=z, en=e, definition=d) for k, (z, e, d) in fair.COLUMNS.items()],
        weights=fair.WEIGHTS, urban_village_weight=fair.URBAN_VILLAGE_WEIGHT, formula=FORMULA,
        workers=[_public(c, s) for c, s in workers], grids=[_public(c, s) for c, s in grids])


@router.get("/export", response_class=FileResponse,
            summary="The scorecards as a spreadsheet for the assessment (XLSX with the definitions, or CSV)",
            description="The same cards as GET /api/scorecards, one row per worker then per grid (类别 网格员 / "
                        "网格); an XLSX has the definitions (口径) on a second sheet. Audited.")
def export(session: SessionDep, who: CurrentUser, division: Division = None, date_from: From = None,
           date_to: To = None, format: Literal["xlsx", "csv"] = "xlsx") -> FileResponse:
    found, workers, grids = _read(session, who, division, date_from, date_to)
    headers = ["类别", "用户名/网格编码", "姓名/网格名称", "社区", "负责网格",
               *(z for z, _, _ in store.COLUMNS.values()), *(z for z, _, _ in fair.COLUMNS.values())]
    rows = [["网格员" if c.kind == "worker" else "网格", c.key, c.label, c.community, "、".join(c.grids),
             *(round(v, 2) if isinstance(v, float) else v for k in store.COLUMNS for v in [getattr(c, k)]),
             *(getattr(s, k) for k in fair.COLUMNS)] for c, s in workers + grids]
    notes = [["期间", f"{found.date_from} 至 {found.date_to}（北京时间，含首尾）"], ["综合方法", FORMULA],
             *([z, d] for z, _, d in store.COLUMNS.values()), *([z, d] for z, _, d in fair.COLUMNS.values())]
    name = f"scorecards-{division or 'area'}-{found.date_from}-{found.date_to}.{format}"
    with scratch("gridgov-scorecards-") as folder:
        path = write_table(folder / name, format, "绩效考核", headers, rows, notes)
        return attachment(folder, path, MEDIA_TYPES[format])
