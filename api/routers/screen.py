"""The command centre's wall screen (大屏): live figures per community of a division. The page (/screen) polls
this answer every 20 seconds and draws the map with MapLibre on /tiles/style.json. Counts only, no personal data;
the SQL is in :mod:`spatial.store.screen`."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.deps import CurrentUser, ReadSessionDep, SettingsDep
from api.types import DivisionCode
from spatial.errors import InvalidInput
from spatial.store import screen

router = APIRouter(prefix="/api/screen", tags=["screen · 大屏"])


class OpeningFigures(BaseModel):
    openings: int
    open: int
    sealed: int
    checkpoints: int
    staffed_checkpoints: int
    staff: int
    unguarded: int


class CommunityFiguresPublic(BaseModel):
    code: str | None = Field(description="community code; null for the division's total")
    name: str | None
    households: int = Field(description="the buildings' household counts, summed as the grids layer does")
    persons: int = Field(description="current residents of the population ledger (not moved out); 0 without one")
    targeted: int = Field(description="households targeted by the open campaigns")
    screened: int = Field(description="of them, visited")
    coverage: float | None = Field(description="screened / targeted (0–1); null without an open campaign")
    open_cases: int
    overdue_cases: int
    openings: OpeningFigures = Field(description="the inspector's figures of the community's enclosures")
    staffed_now: int = Field(description="checkpoints staffed at this minute (their schedule, Asia/Shanghai)")
    risk_severity: int | None = Field(None, ge=1, le=9, description="the highest severity of the risk zones in force "
                                                                   "(1–9, the schemes' shared scale); null: none")
    risk_zones: dict[str, int] = Field({}, description="risk zones in force by severity (a zone over a subdistrict "
                                                       "counts for each of its communities; the total counts it once)")


class ScreenPublic(BaseModel):
    division: str
    name: str | None
    at: datetime = Field(description="the instant the figures describe (overdue and staffed-now are judged then)")
    refresh_s: int = Field(description="how often the screen asks again")
    communities: list[CommunityFiguresPublic]
    total: CommunityFiguresPublic


REFRESH_S = 20


@router.get("/figures", response_model=ScreenPublic, summary="Live figures per community (大屏数据)",
            description="Households, persons, screening coverage of the open campaigns, open and overdue cases, "
                        "openings and checkpoints (staffed now), risk zones in force by level per community of a division in the caller's area, "
                        "and their total. `division` defaults to the caller's own area.")
def figures(session: ReadSessionDep, who: CurrentUser, settings: SettingsDep,
            division: Annotated[DivisionCode | None, Query(description="a district, subdistrict or community "
                                                                        "code (12 digits)")] = None) -> ScreenPublic:
    code = division or who.scope_code
    if code is None:
        raise InvalidInput("name a division: your account has no area of its own", code="scope.division_needed")
    found = screen.screen_figures(session, who, code, at=datetime.now(timezone.utc),
                                  metric_srid=settings.metric_srid)
    return ScreenPublic(division=found.division, name=found.name, at=found.at, refresh_s=REFRESH_S,
                        communities=[CommunityFiguresPublic(**c.as_dict()) for c in found.communities],
                        total=CommunityFiguresPublic(**found.total.as_dict()))
