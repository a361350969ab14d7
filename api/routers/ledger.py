"""Correcting the population ledger on the spot (动态更新): a household's sheet and the edits of its residents.

``GET /api/field/households/{id}`` answers the household with its residents, masked and audited, and its ETag
(``"household-<id>.v<n>"``). Every edit sends that ETag as ``If-Match``: without it 428, with an older one (or one
that is not this household's) 412; the answer is the sheet after the edit, with the new ETag. Grid workers edit
the households of their grids, planners those of their division, admins all (:mod:`spatial.store.ledger_edits`).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from pydantic import BaseModel, Field

from api.deps import CurrentUser, SessionDep, SettingsDep
from api.schemas import Label
from api.types import BigId, OneOf, Text
from spatial.errors import StaleEdit
from spatial.personal_keys import personal_keys
from spatial.store import ledger_edits as store
from spatial.vocab import HOUSEHOLD_TAGS, MOVE_OUT_REASONS, PERSON_RELATIONS, PERSON_TAGS, RESIDENCE_KINDS, label
from spatial.worktime import LOCAL

router = APIRouter(prefix="/api/field/households", tags=["field · 外勤"])

IfMatch = Annotated[str | None, Header(description='the household\'s ETag from GET, e.g. "household-12.v3" '
                                                   "(required: 428 without it, 412 when it is not the current one)")]
ID_PATTERN = r"^([0-9]{17}[0-9Xx]|[A-Za-z0-9]{5,20})$"
PHONE_PATTERN = r"^[0-9+\-() ]{3,30}$"
Note = Text(store.MAX_NOTE)


# -- schemas ------------------------------------------------------------------------------------------------------


class PersonPublic(BaseModel):
    id: int
    name: str = Field(description="masked: surname + *")
    gender: str | None = Field(description="male, female or unknown (null)")
    relation: Label
    kind: Label
    id_number: str = Field(description="masked: first 6 + last 4")
    phone: str | None = Field(description="masked: first 3 + last 4")
    tags: list[Label]
    moved_in: date | None
    moved_out: date | None = Field(description="null while living here")
    moved_out_reason: Label | None
    origin: str = Field(description="'field' when last corrected on the spot, else the ledger it came from")
    updated_at: datetime


class HouseholdSheetPublic(BaseModel):
    id: int
    version: int = Field(description="send back as If-Match (the etag) with an edit")
    etag: str = Field(description='"household-<id>.v<version>", also the ETag header')
    building_id: int
    building_code: str | None
    building_name: str | None
    grid_id: int | None
    unit: str
    floor: int | None
    room: str
    residents: int = Field(description="current residents in the ledger (at most 50), or the count entered")
    tags: list[Label]
    persons: list[PersonPublic] = Field(description="current residents, head first")
    history: list[PersonPublic] = Field(description="residents who moved out (history=true, or after an edit)")


Relation = OneOf(PERSON_RELATIONS)
Gender = OneOf(("male", "female"))
Kind = OneOf(RESIDENCE_KINDS)
Tags = Annotated[list[OneOf(PERSON_TAGS)], Field(max_length=len(PERSON_TAGS),
                                                 description="person tags: " + ", ".join(PERSON_TAGS))]
Phone = Annotated[str, Field(pattern=PHONE_PATTERN, description="a mobile (1[3-9] + 9 digits, +86 allowed) or a "
                                                                "landline (0 + area code + number)")]


class PersonCreate(BaseModel):
    name: Text(store.MAX_NAME, blank=False)
    id_number: str = Field(pattern=ID_PATTERN, description="18 characters with a valid GB 11643 check character (a "
                                                           "foreign resident: their document, 5–20 letters and digits)",
                           examples=["44030419800101002X"])
    phone: Phone | None = None
    relation: Relation = Field("other", description=" / ".join(PERSON_RELATIONS))
    kind: Kind = Field("registered", description=" / ".join(RESIDENCE_KINDS))
    gender: Gender | None = Field(None, description="default: from the ID number")
    tags: Tags = []
    moved_in: date | None = Field(None, description="default today (China); not in the future")
    note: Note | None = Field(None, description="why (audited)")


class PersonChange(BaseModel):
    phone: Phone | None = Field(None, description="the new phone; null clears it; absent: unchanged")
    relation: Relation | None = None
    kind: Kind | None = None
    tags: Tags | None = Field(None, description="the whole list (absent: unchanged)")
    note: Note | None = None


class MoveOut(BaseModel):
    moved_out: date | None = Field(None, description="default today (China); not before moving in, not in the "
                                                     "future")
    note: Note | None = None


class HouseholdChange(BaseModel):
    unit: Text(store.MAX_UNIT, blank=False) | None = None
    floor: int | None = Field(None, ge=-5, le=200, description="-5 to 200; null clears it; absent: unchanged")
    room: Text(store.MAX_ROOM, blank=False) | None = None
    building_id: BigId | None = Field(None, description="move the household to this building (in your area)")
    note: Note | None = None


# -- helpers ------------------------------------------------------------------------------------------------------


def _etag(household_id: int, version: int) -> str:
    return f'"household-{household_id}.v{version}"'


def _version(header: str | None, household_id: int) -> int | None:
    """The version of If-Match (None without one: the store answers 428); 412 for another household's tag or
    a malformed one."""
    if not header or not header.strip():
        return None
    match = re.fullmatch(rf'(?:W/)?"?household-{household_id}\.v([0-9]{{1,9}})"?', header.strip())
    if match is None:
        raise StaleEdit(f'If-Match {header[:40]!r} is not the ETag of this household (like '
                        f'"household-{household_id}.v3"): reload it and try again')
    return int(match.group(1))


def _today() -> date:
    return datetime.now(LOCAL).date()


def _labels(vocabulary, codes) -> list[Label]:
    return [Label(code=c, zh=label(vocabulary, c, "zh"), en=label(vocabulary, c, "en")) for c in codes]


def _person(p: store.PersonView) -> PersonPublic:
    one = lambda vocabulary, code: _labels(vocabulary, [code])[0] if code else None  # noqa: E731
    return PersonPublic(id=p.id, name=p.name, gender=p.gender, relation=one(PERSON_RELATIONS, p.relation),
                        kind=one(RESIDENCE_KINDS, p.kind), id_number=p.id_number, phone=p.phone,
                        tags=_labels(PERSON_TAGS, p.tags), moved_in=p.moved_in, moved_out=p.moved_out,
                        moved_out_reason=one(MOVE_OUT_REASONS, p.moved_out_reason), origin=p.origin,
                        updated_at=p.updated_at)


def _answer(sheet: store.HouseholdSheet, response: Response) -> HouseholdSheetPublic:
    etag = _etag(sheet.id, sheet.version)
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-store"
    return HouseholdSheetPublic(
        id=sheet.id, version=sheet.version, etag=etag, building_id=sheet.building_id,
        building_code=sheet.building_code, building_name=sheet.building_name, grid_id=sheet.grid_id, unit=sheet.unit,
        floor=sheet.floor, room=sheet.room, residents=sheet.residents, tags=_labels(HOUSEHOLD_TAGS, sheet.tags),
        persons=[_person(p) for p in sheet.persons], history=[_person(p) for p in sheet.history])


# -- endpoints ----------------------------------------------------------------------------------------------------


@router.get("/{household_id}", response_model=HouseholdSheetPublic, summary="A household and its residents (住户详情)",
            description="Masked; audited. Roles that read household data, in their area (viewers and auditors: 403). "
                        "The ETag is what an edit sends as If-Match.")
def household_sheet(household_id: BigId, response: Response, session: SessionDep, who: CurrentUser,
                    history: Annotated[bool, Query(description="also the residents who moved out")] = False,
                    purpose: Annotated[Text(store.MAX_NOTE) | None,
                                       Query(description="why you look (written to the audit log)")] = None,
                    ) -> HouseholdSheetPublic:
    return _answer(store.sheet(session, who, household_id, history=history, purpose=purpose), response)


@router.post("/{household_id}/persons", response_model=HouseholdSheetPublic, status_code=201,
             summary="Add a resident (新增住户)",
             description="A new resident of the household, checked as a ledger row (ID check character, phone). "
                         "Someone living in another household of your area moves here (that row is closed); one "
                         "living outside your area is 409. If-Match required.")
def add_person(household_id: BigId, body: PersonCreate, response: Response, session: SessionDep, who: CurrentUser,
               settings: SettingsDep, if_match: IfMatch = None) -> HouseholdSheetPublic:
    new = store.NewPerson(name=body.name, id_number=body.id_number.upper(), phone=body.phone, relation=body.relation,
                          kind=body.kind, gender=body.gender, tags=tuple(body.tags), moved_in=body.moved_in)
    sheet = store.add_person(session, who, household_id, _version(if_match, household_id), new,
                             lambda: personal_keys(settings), today=_today(), note=body.note)
    return _answer(sheet, response)


@router.patch("/{household_id}/persons/{person_id}", response_model=HouseholdSheetPublic,
              summary="Correct a resident: phone, relation, kind, tags (更正住户信息)",
              description="Members left out stay as they are; `phone: null` clears the phone. If-Match required.")
def change_person(household_id: BigId, person_id: BigId, body: PersonChange, response: Response,
                  session: SessionDep, who: CurrentUser, settings: SettingsDep,
                  if_match: IfMatch = None) -> HouseholdSheetPublic:
    given: dict[str, Any] = {k: getattr(body, k) for k in ("relation", "kind", "tags") if getattr(body, k) is not None}
    if "phone" in body.model_fields_set:
        given["phone"] = body.phone
    sheet = store.change_person(session, who, household_id, person_id, _version(if_match, household_id),
                                lambda: personal_keys(settings), note=body.note, **given)
    return _answer(sheet, response)


@router.post("/{household_id}/persons/{person_id}/move-out", response_model=HouseholdSheetPublic,
             summary="Mark a resident moved out (迁出)",
             description="The resident's row is closed on the date and kept as history. If-Match required.")
def move_out(household_id: BigId, person_id: BigId, body: MoveOut, response: Response, session: SessionDep,
             who: CurrentUser, if_match: IfMatch = None) -> HouseholdSheetPublic:
    sheet = store.move_out(session, who, household_id, person_id, _version(if_match, household_id),
                           today=_today(), moved_out=body.moved_out, note=body.note)
    return _answer(sheet, response)


@router.patch("/{household_id}", response_model=HouseholdSheetPublic,
              summary="Correct a household: unit, floor, room, building (更正房号)",
              description="Members left out stay as they are; `floor: null` clears the floor; `building_id` moves "
                          "the household to another building of your area. If-Match required.")
def correct_household(household_id: BigId, body: HouseholdChange, response: Response, session: SessionDep,
                      who: CurrentUser, if_match: IfMatch = None) -> HouseholdSheetPublic:
    given: dict[str, Any] = {k: getattr(body, k) for k in ("unit", "room", "building_id")
                             if getattr(body, k) is not None}
    if "floor" in body.model_fields_set:
        given["floor"] = body.floor
    sheet = store.correct_household(session, who, household_id, _version(if_match, household_id), note=body.note,
                                    **given)
    return _answer(sheet, response)
