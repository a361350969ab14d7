"""Automatic plans for planners: a balanced grid plan to review and adopt, and micro-grids of five buildings.

A proposal writes nothing. Adopting recomputes the same proposal (the solver is seeded, so the same inputs
give the same plan), retires the community's grids and writes the new ones as new versions with the reason.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, Field
from shapely.geometry import mapping, shape

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.geojson import CrsName
from api.types import DivisionCode
from spatial.access import Principal
from spatial.errors import PreconditionRequired
from spatial.geometry.crs import from_wgs84, parse_crs
from spatial.store import grids as grid_store
from spatial.store import plans
from spatial.store.microgrids import regenerate_micro_grids

router = APIRouter(tags=["plans · 自动方案"])


class PlanRequest(BaseModel):
    community_code: DivisionCode
    low: int = Field(300, ge=1, le=100_000, description="fewest households per grid")
    high: int = Field(500, ge=1, le=100_000, description="most households per grid")
    crs: CrsName | None = Field(None, description="CRS of the returned geometries")


class AdoptRequest(PlanRequest):
    reason: str = Field(min_length=1, pattern=r"\S", description="recorded in every new grid's history")


def _planner(who: Principal, community_code: str) -> None:
    who.require_role("planner")
    who.require_scope(community_code)


@router.post("/api/plans/propose", summary="Propose balanced grids for a community (均衡网格方案，不写入)",
             description="The answer's `basis` (also its ETag) names the grids the plan was made on: send it as "
                         "`If-Match` to adopt, so that a grid changed meanwhile is never overwritten unseen (412).")
def propose(body: PlanRequest, session: SessionDep, settings: SettingsDep, who: CurrentUser,
            response: Response) -> dict[str, Any]:
    _planner(who, body.community_code)
    proposal = plans.propose_plan(session, body.community_code, low=body.low, high=body.high,
                                  metric_srid=settings.metric_srid)
    basis = response.headers["ETag"] = plans.plan_basis(session, body.community_code)
    crs = parse_crs(body.crs)
    collection = proposal.feature_collection()
    for feature in collection["features"]:
        feature["geometry"] = mapping(from_wgs84(shape(feature["geometry"]), crs))
    return {"community_code": body.community_code, "range": [body.low, body.high], "stats": proposal.stats,
            "current_stats": proposal.current_stats, "grids": {**collection, "crs": crs.name},
            "excluded_buildings": list(proposal.excluded), "basis": basis}


@router.post("/api/plans/adopt", summary="Adopt the balanced plan as the community's new grids (采用方案)")
def adopt(body: AdoptRequest, session: SessionDep, settings: SettingsDep, who: CurrentUser,
          if_match: Annotated[str | None, Header(description="the `basis` of the proposal")] = None
          ) -> dict[str, Any]:
    _planner(who, body.community_code)
    if not if_match:
        raise PreconditionRequired("send If-Match with the proposal's basis (from POST /api/plans/propose) so that "
                                   "grids changed since are never overwritten")
    proposal = plans.propose_plan(session, body.community_code, low=body.low, high=body.high,
                                  metric_srid=settings.metric_srid)
    report = plans.adopt_plan(session, body.community_code, proposal, who.username, body.reason,
                              metric_srid=settings.metric_srid, basis=if_match)
    return {**asdict(report), "stats": proposal.stats}


@router.post("/api/grids/{code}/micro-grids", summary="Regroup a grid's buildings into micro-grids of five (生成微网格)")
def micro_grids(code: str, session: SessionDep, settings: SettingsDep, who: CurrentUser) -> dict[str, Any]:
    _planner(who, code[:12])
    grid = grid_store.grid_row(session, code)
    report = regenerate_micro_grids(session, grid["id"], metric_srid=settings.metric_srid)
    return asdict(report)
