"""The grid team (网格团队, "2+N") and its tasks (任务): who serves a grid, the checks, tasks on the field page.

The rules are :mod:`spatial.store.team` and :mod:`spatial.store.tasks` (decision 0020).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field, StringConstraints

from api.deps import CurrentUser, SessionDep
from api.types import BigId, BuildingCode, GridCode, Id, OneOf, Text
from spatial.store import tasks, team
from spatial.vocab import TASK_KINDS, TEAM_DUTIES

router = APIRouter(tags=["team · 网格团队"])

Phone = Annotated[str, StringConstraints(pattern=r"^1[0-9]{10}$"), Field(description="an 11-digit mobile number")]
Username = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{3,64}$")]
DivisionOrGrid = Annotated[str, StringConstraints(pattern=r"^[0-9]{12}([0-9]{2})?$")]


class AssignmentCreate(BaseModel):
    username: Username
    duty: OneOf(TEAM_DUTIES) = Field(description="leader / worker: a grid worker on a grid; any other duty is the "
                                                 "account's role")
    grid_code: GridCode | None = None
    micro_grid_id: Id | None = None
    building_code: BuildingCode | None = None
    unit: Text(20, blank=False) | None = Field(None, description="a unit head's unit (单元)")
    contact: Phone | None = Field(None, description="the work phone for this duty")
    valid_from: datetime | None = Field(None, description="default: now")


class MemberPublic(BaseModel):
    username: str
    display_name: str | None
    role: str
    duty: str
    target_kind: str = Field(description="grid, micro_grid or building")
    target: str = Field(description="the grid code, the micro-grid's number in its grid, or the building code")
    assignment_id: int | None = Field(description="the team assignment; None for a grid worker")
    unit: str | None
    contact: str | None = Field(description="work phone for the duty (colleagues call each other)")
    valid_from: datetime | None
    valid_to: datetime | None


class MicroGridHeadsPublic(BaseModel):
    id: int
    seq: int
    name: str | None
    buildings: int
    heads: list[str]


class GridTeamPublic(BaseModel):
    grid_id: int
    grid_code: str
    grid_name: str | None
    members: list[MemberPublic]
    micro_grids: list[MicroGridHeadsPublic]


class ShortGrid(BaseModel):
    grid_code: str
    workers: int


class MicroGridRef(BaseModel):
    grid_code: str
    id: int
    seq: int


class GridChecked(BaseModel):
    code: str
    name: str | None
    workers: int = Field(description="active grid workers")


class TeamChecksPublic(BaseModel):
    grids: list[GridChecked] = Field(description="grids checked (current grids of your area)")
    short_of_workers: list[ShortGrid] = Field(description=f"fewer than {team.MIN_WORKERS} grid workers")
    without_leader: list[str]
    without_police: list[str]
    micro_grids_without_head: list[MicroGridRef]


class TaskCreate(BaseModel):
    kind: OneOf(TASK_KINDS)
    assignee: Username
    due: date = Field(description="the day it is due (a week ago at the earliest, a year ahead at the latest)")
    household_id: BigId | None = None
    person_id: BigId | None = Field(None, description="a current resident of the household")
    building_code: BuildingCode | None = None
    note: Text(tasks.MAX_NOTE) | None = None


class TaskMark(BaseModel):
    done: bool
    note: Text(tasks.MAX_NOTE) | None = None


class TaskPublic(BaseModel):
    id: int
    kind: str
    due: date
    done_at: datetime | None
    done_by: str | None
    note: str | None
    assignee: str
    assignee_name: str | None
    created_by: str
    created_at: datetime
    grid_code: str
    building_id: int
    building_code: str | None
    building_name: str | None
    household_id: int | None
    unit: str | None
    floor: int | None
    room: str | None
    head_name: str | None = Field(description="masked")
    person_name: str | None = Field(description="masked")
    overdue: bool


def _team(view: team.GridTeam) -> GridTeamPublic:
    return GridTeamPublic(**asdict(view))


@router.get("/api/team/grids/{code}", response_model=GridTeamPublic, summary="A grid's team (网格团队)",
            description="Grid workers (leader first), police, medical staff, specialists, building and unit heads, "
                        "volunteers, with contacts; and the grid's micro-grids with their building heads. Planners, "
                        "inspectors, grid workers and police of the grid's area.")
def grid_team(code: Annotated[str, Path(pattern=r"^[0-9]{12}(0[1-9]|[1-9][0-9])$")], session: SessionDep,
              who: CurrentUser) -> GridTeamPublic:
    return _team(team.grid_team(session, who, code))


@router.get("/api/team/checks", response_model=TeamChecksPublic, summary="Team checks (团队配备检查)",
            description=f"Current grids of your area with fewer than {team.MIN_WORKERS} grid workers, without a "
                        "leader or a police officer; micro-grids without a building head.")
def checks(session: SessionDep, who: CurrentUser,
           division: Annotated[DivisionOrGrid | None, Query(description="within this division or grid")] = None,
           ) -> TeamChecksPublic:
    return TeamChecksPublic(**asdict(team.checks(session, who, division_code=division)))


@router.post("/api/team/assignments", status_code=201, response_model=MemberPublic,
             summary="Put someone on a grid's team (分配团队成员)",
             description="Planners of the target's area. Exactly one of grid_code, micro_grid_id, building_code.")
def assign(body: AssignmentCreate, session: SessionDep, who: CurrentUser) -> MemberPublic:
    member = team.assign(session, who, **body.model_dump())
    return MemberPublic(**asdict(member))


@router.delete("/api/team/assignments/{assignment_id}", response_model=MemberPublic,
               summary="End a team assignment (结束分工); it stays in the team's history")
def end(assignment_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep,
        who: CurrentUser) -> MemberPublic:
    return MemberPublic(**asdict(team.end_assignment(session, who, assignment_id)))


@router.get("/api/tasks", response_model=list[TaskPublic], summary="Tasks (任务): yours, and your area's",
            description="Given to you; and, for roles that read households, those of your household scope. Names "
                        "masked; audited.")
def list_tasks(session: SessionDep, who: CurrentUser,
               mine: Annotated[bool, Query(description="only those given to you")] = False,
               grid: Annotated[GridCode | None, Query(description="of this grid")] = None,
               open_only: Annotated[bool, Query(alias="open", description="undone only")] = False,
               limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[TaskPublic]:
    return [TaskPublic(**asdict(t)) for t in tasks.list_tasks(session, who, mine=mine, grid_code=grid,
                                                               open_only=open_only, limit=limit)]


@router.post("/api/tasks", status_code=201, response_model=TaskPublic, summary="Hand out a task (派发任务)",
             description="Grid workers and planners, for a household or a building of their area, to a member of "
                         "that place's team.")
def create_task(body: TaskCreate, session: SessionDep, who: CurrentUser) -> TaskPublic:
    return TaskPublic(**asdict(tasks.create_task(session, who, **body.model_dump())))


@router.get("/api/tasks/{task_id}", response_model=TaskPublic, summary="One task (任务)")
def get_task(task_id: Annotated[int, Path(ge=1, le=2**53 - 1)], session: SessionDep, who: CurrentUser) -> TaskPublic:
    return TaskPublic(**asdict(tasks.get_task(session, who, task_id)))


@router.patch("/api/tasks/{task_id}", response_model=TaskPublic, summary="Mark a task done or undone (完成任务)")
def mark_task(task_id: Annotated[int, Path(ge=1, le=2**53 - 1)], body: TaskMark, session: SessionDep,
              who: CurrentUser) -> TaskPublic:
    return TaskPublic(**asdict(tasks.set_done(session, who, task_id, body.done, note=body.note)))
