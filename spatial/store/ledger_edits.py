"""Correcting the population ledger on the spot (动态更新): a household's sheet and the edits of its persons.

A grid worker at the door, or a planner / admin at a desk, corrects what the ledger says: a new resident, one who
moved out, a new phone number, the household's unit / floor / room or its building.

* **Who**: :data:`EDIT_ROLES` (grid workers in their grids, planners in their division's subtree) and admins; the
  household must lie in ``who.household_scope`` (:mod:`spatial.store.scope`), else OutOfScope (404, the answer
  of a household that does not exist). Inspectors read sheets but do not edit; viewers and auditors neither.
* **Versions**: every household has a ``version`` that the database bumps on any change of the row or of its
  persons (migration 0019: imports, other edits, recomputed heads). Each edit names the version it was made on:
  None is PreconditionRequired (428), another one StaleEdit (412); the edit locks the household row first, so two
  edits of one household are serialised and the second is stale.
* **Personal data**: ID and phone numbers are checked as the importer checks them
  (:func:`spatial.io.residents.id_number_value`, GB 11643 check character), and stored as the importer stores
  them: sealed (AES-GCM), keyed hash and masked form (:mod:`spatial.personal_keys`); no plaintext reaches the
  database. Sheets leave masked (:mod:`spatial.privacy`). Every read is audited (``read_masked``), every edit
  writes its own audit row naming the households concerned and the fields changed, in the edit's transaction.
* **History**: nothing is deleted. A resident who moves out keeps their row, closed with the date and reason
  'left'; one added here who lives in another household of the caller's area has that row closed ('moved').
* **Counts**: after each edit the household's residents, head and tags are recomputed from its current persons
  (:func:`spatial.store.persons.refresh_households`), and its building's ``households`` / ``residents`` follow
  (:func:`_building_counts`).

Dates are ``date`` (no time zone); "today" is the caller's (the router passes the date in China, UTC+8).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.errors import Conflict, InvalidInput, NotFound, OutOfScope, PreconditionRequired, StaleEdit
from spatial.io.residents import gender_from_id, id_number_value, phone_value
from spatial.personal_keys import PersonalKeys
from spatial.store import audit, persons
from spatial.store.scope import building_scope
from spatial.vocab import PERSON_RELATIONS, PERSON_TAGS, RESIDENCE_KINDS

EDIT_ROLES = ("grid_worker", "planner")
SHEET_FIELDS = ("name", "id_number", "phone", "relation", "kind", "tags")
"""The (masked) personal fields a sheet returns, as audited."""
MAX_NAME, MAX_UNIT, MAX_ROOM, MAX_NOTE = 100, 20, 50, 500
EARLIEST = date(1900, 1, 1)
Keys = PersonalKeys | Callable[[], PersonalKeys]
"""The personal-data keys, or how to load them: loaded only once the edit is allowed and its version current."""
UNSET: Any = object()
"""A keyword not given (as opposed to None: 'clear this value')."""


# -- the sheet ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonView:
    """One residence of a person, masked: name surname + ``*``, ID number first 6 + last 4, phone 3 + 4."""

    id: int
    name: str
    gender: str | None
    relation: str
    kind: str
    id_number: str
    phone: str | None
    tags: tuple[str, ...]
    moved_in: date | None
    moved_out: date | None
    moved_out_reason: str | None
    origin: str
    updated_at: datetime


@dataclass(frozen=True)
class HouseholdSheet:
    """A household with its current persons (``persons``, head first) and, if asked, the closed rows
    (``history``, newest move-out first). ``version`` is the one to send back with an edit."""

    id: int
    version: int
    building_id: int
    building_code: str | None
    building_name: str | None
    grid_id: int | None
    community_code: str | None
    unit: str
    floor: int | None
    room: str
    residents: int
    tags: tuple[str, ...]
    persons: tuple[PersonView, ...]
    history: tuple[PersonView, ...] = field(default=())


_HOUSEHOLD = """
SELECT h.id, h.version, h.building_id, b.code AS building_code, b.name AS building_name, b.grid_id,
       b.community_code, h.unit, h.floor, h.room, h.residents, h.tags
FROM households h JOIN buildings b ON b.id = h.building_id
WHERE h.id = :id AND {scope}"""

_PERSONS = """
SELECT id, name, gender, relation, kind, id_number_masked, phone_masked, tags, moved_in, moved_out, moved_out_reason,
       origin, updated_at
FROM persons WHERE household_id = :id AND (moved_out IS NULL OR :history)
ORDER BY moved_out IS NOT NULL, moved_out DESC, relation <> 'head', moved_in NULLS FIRST, id"""


def _person(r: Any) -> PersonView:
    return PersonView(id=r.id, name=privacy.mask_name(r.name), gender=r.gender, relation=r.relation, kind=r.kind,
                      id_number=r.id_number_masked, phone=r.phone_masked, tags=tuple(r.tags or ()),
                      moved_in=r.moved_in, moved_out=r.moved_out, moved_out_reason=r.moved_out_reason,
                      origin=r.origin, updated_at=r.updated_at)


def _load(session: Session, who: Principal, household_id: int, *, history: bool, lock: bool = False) -> HouseholdSheet:
    scope, params = building_scope(who.household_scope)
    row = session.execute(text(_HOUSEHOLD.format(scope=scope) + (" FOR UPDATE OF h" if lock else "")),
                          {**params, "id": household_id}).mappings().one_or_none()
    if row is None:
        raise OutOfScope(f"no household {household_id} in your area")
    rows = session.execute(text(_PERSONS), {"id": household_id, "history": history}).all()
    people = [_person(r) for r in rows]
    return HouseholdSheet(**{**row, "tags": tuple(row["tags"] or ())},
                          persons=tuple(p for p in people if p.moved_out is None),
                          history=tuple(p for p in people if p.moved_out is not None))


def sheet(session: Session, who: Principal, household_id: int, *, history: bool = False,
          purpose: str | None = None) -> HouseholdSheet:
    """The household and its persons, masked, for roles that read household data (Forbidden otherwise) within
    their scope (OutOfScope otherwise); one audit row (``read_masked``, the household, :data:`SHEET_FIELDS`)."""
    who.require_household_read()
    found = _load(session, who, household_id, history=history)
    audit.record_read(session, who, "read_masked", object_type="household", object_id=household_id,
                      fields=SHEET_FIELDS, purpose=(purpose or "household sheet")[:MAX_NOTE])
    return found


# -- edits --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPerson:
    """A resident to add: ``id_number`` and ``phone`` as typed (checked and normalised here); ``gender`` None
    takes it from the ID number; ``moved_in`` None is today."""

    name: str
    id_number: str
    phone: str | None = None
    relation: str = "other"
    kind: str = "registered"
    gender: str | None = None
    tags: Sequence[str] = ()
    moved_in: date | None = None


def _begin(session: Session, who: Principal, household_id: int, version: int | None) -> HouseholdSheet:
    """Check role, scope and version, and lock the household row (and wait for a running ledger import)."""
    who.require_role(*EDIT_ROLES)
    who.require_household_read()
    session.execute(text("SELECT pg_advisory_xact_lock_shared(:lock)"), {"lock": persons.LOCK})
    current = _load(session, who, household_id, history=False, lock=True)
    if version is None:
        raise PreconditionRequired(f"send If-Match with the ETag of household {household_id} (from GET "
                                   f"/api/field/households/{household_id}) so that a newer change is never "
                                   "overwritten", code="ledger.version_missing", household=household_id)
    if version != current.version:
        raise StaleEdit(f"household {household_id} is at version {current.version}, your change was made on version "
                        f"{version}: reload it and check before changing it", code="ledger.stale",
                        household=household_id, version=current.version)
    return current


def _note(note: str | None) -> str | None:
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"a note is limited to {MAX_NOTE} characters", field="note")
    return note


def _date(value: date | None, today: date, *, earliest: date = EARLIEST) -> date:
    """``value`` (default ``today``) between ``earliest`` and ``today`` (one day of slack for time zones)."""
    value = value or today
    latest = today + timedelta(days=1)
    if not earliest <= value <= latest:
        raise InvalidInput(f"the date {value} must lie between {earliest} and {latest}", code="ledger.bad_date",
                           earliest=earliest.isoformat(), latest=latest.isoformat())
    return value


def _choice(value: str, vocabulary: Any, name: str) -> str:
    if value not in vocabulary:
        raise InvalidInput(f"{name} must be one of {', '.join(vocabulary)}, got {value!r}", field=name)
    return value


def _tags(tags: Sequence[str]) -> list[str]:
    bad = sorted(set(tags) - set(PERSON_TAGS))
    if bad:
        raise InvalidInput(f"unknown tags {', '.join(bad)}; tags are {', '.join(PERSON_TAGS)}", field="tags")
    return sorted(set(tags))


def _no_second_head(session: Session, household_id: int, person_id: int | None = None) -> None:
    head = session.execute(text("""SELECT id, name FROM persons WHERE household_id = :h AND relation = 'head'
                                   AND moved_out IS NULL AND id IS DISTINCT FROM :p"""),
                           {"h": household_id, "p": person_id}).one_or_none()
    if head is not None:
        masked = privacy.mask_name(head.name)
        raise Conflict(f"household {household_id} has a head already ({masked}): change their relation first",
                       code="ledger.second_head", head=masked)


def _sealed(keys: PersonalKeys, field_name: str, value: str | None, mask) -> dict[str, Any]:
    """The three stored forms of a value (all None for None): sealed, keyed hash under the current key, masked."""
    if value is None:
        return {"sealed": None, "hash": None, "masked": None}
    return {"sealed": keys.seal(field_name, value), "hash": keys.digest(field_name, value), "masked": mask(value)}


def _finish(session: Session, who: Principal, before: HouseholdSheet, action: str, fields: Sequence[str],
            note: str | None, *, also: Sequence[int] = (), summary: str = "") -> HouseholdSheet:
    """Recompute the households' ledger columns and their buildings' counts, audit, and load the sheet again."""
    touched = [before.id, *also]
    residents_before = dict(session.execute(text("SELECT id, residents FROM households WHERE id = ANY(:ids)"),
                                            {"ids": touched}).all())
    persons.refresh_households(session, touched)
    rows = session.execute(text("SELECT id, building_id, residents FROM households WHERE id = ANY(:ids)"),
                           {"ids": touched}).all()
    for r in rows:
        if r.residents != residents_before[r.id]:
            _building_counts(session, r.building_id, residents=r.residents - residents_before[r.id])
    audit.record(session, who, action, object_type="household", object_id=before.id, households=touched,
                 fields=list(fields), purpose=note, result=("ok " + summary).strip())
    return _load(session, who, before.id, history=True)


def _building_counts(session: Session, building_id: int, *, households: int = 0, residents: int = 0) -> None:
    """Move a building's ``households`` / ``residents`` (estimates or imported counts, NULL when unknown) by these
    deltas, never below what its household rows hold (NULL becomes that)."""
    if not households and not residents:
        return
    session.execute(text("""
        UPDATE buildings b SET
            households = CASE WHEN :dh = 0 THEN b.households ELSE greatest(coalesce(b.households, 0) + :dh, r.n) END,
            residents = CASE WHEN :dr = 0 THEN b.residents ELSE greatest(coalesce(b.residents, 0) + :dr, r.people) END
        FROM (SELECT count(*) AS n, coalesce(sum(residents), 0) AS people FROM households WHERE building_id = :b) r
        WHERE b.id = :b"""), {"b": building_id, "dh": households, "dr": residents})


def _insert_guarded(session: Session, sql: str, params: dict[str, Any]) -> Any:
    """Run an INSERT / UPDATE of ``persons`` in a savepoint: a concurrent edit that made the same person current
    twice, or two heads, is a Conflict (409), not a 500."""
    try:
        with session.begin_nested():
            return session.execute(text(sql), params)
    except IntegrityError as exc:
        constraint = getattr(getattr(exc.orig, "diag", None), "constraint_name", "")
        if constraint == "persons_one_current_head":
            raise Conflict("this household has a head already", code="ledger.second_head", head="?") from None
        if constraint == "persons_current_id_number":
            raise Conflict("this person is registered in another household", code="ledger.lives_elsewhere") from None
        raise


def _keys(keys: Keys) -> PersonalKeys:
    return keys if isinstance(keys, PersonalKeys) else keys()


def add_person(session: Session, who: Principal, household_id: int, version: int | None, new: NewPerson,
               keys: Keys, *, today: date, note: str | None = None) -> HouseholdSheet:
    """Add a resident (新增住户) to the household.

    Checked as an import row (name 1–100 characters, ID number with its GB 11643 check character or a foreign
    resident's document, phone, relation, kind, tags); ``moved_in`` not after ``today`` (+1 day). A person who
    lives in this household already is a Conflict; one current in another household of the caller's scope moves
    here (that row closed 'moved' on ``moved_in``); one current outside the caller's scope is a Conflict (nothing
    of that household is told). A second head is a Conflict. A household not yet in the ledger (no persons) enters
    it with this resident: its residents, head and tags follow the ledger from then on, so when it has a head
    entered without the ledger, the first resident added must be the head (Conflict otherwise: nothing is lost).
    """
    note = _note(note)
    before = _begin(session, who, household_id, version)
    keys = _keys(keys)
    name = (new.name or "").strip()
    if not name or len(name) > MAX_NAME:
        raise InvalidInput(f"a name of 1–{MAX_NAME} characters", field="name")
    kind = _choice(new.kind, RESIDENCE_KINDS, "kind")
    relation = _choice(new.relation, PERSON_RELATIONS, "relation")
    number = id_number_value(new.id_number, kind)
    phone = phone_value(new.phone)
    gender = new.gender or gender_from_id(number)
    if gender is not None:
        _choice(gender, ("male", "female"), "gender")
    tags = _tags(new.tags)
    moved_in = _date(new.moved_in, today)
    if relation == "head":
        _no_second_head(session, household_id)
    elif session.execute(text("""SELECT h.head_name IS NOT NULL AND NOT EXISTS (
                                     SELECT 1 FROM persons p WHERE p.household_id = h.id)
                                 FROM households h WHERE h.id = :h"""), {"h": household_id}).scalar():
        raise Conflict(f"household {household_id} is not in the population ledger yet and has a head entered without "
                       "it: add the head of household first", code="ledger.head_first")
    scope, params = building_scope(who.household_scope)
    elsewhere = session.execute(text(f"""
        SELECT p.id, p.household_id, p.moved_in, {scope} AS mine
        FROM persons p JOIN households h ON h.id = p.household_id JOIN buildings b ON b.id = h.building_id
        WHERE p.id_number_hash = ANY(:hashes) AND p.moved_out IS NULL"""),
        {**params, "hashes": keys.digests(persons.ID_FIELD, number)}).first()
    also: list[int] = []
    if elsewhere is not None:
        if elsewhere.household_id == household_id:
            raise Conflict(f"this person ({privacy.mask_id_number(number)}) lives in household {household_id} "
                           "already", code="ledger.lives_here")
        if not elsewhere.mine:
            raise Conflict("this person is registered in another household outside your area: that grid should "
                           "mark them moved out first", code="ledger.lives_elsewhere")
        session.execute(text("""UPDATE persons SET moved_out = greatest(CAST(:d AS date), moved_in),
                                moved_out_reason = 'moved', origin = 'field', updated_at = now() WHERE id = :id"""),
                        {"d": moved_in, "id": elsewhere.id})
        also.append(elsewhere.household_id)
    sealed_id = _sealed(keys, persons.ID_FIELD, number, privacy.mask_id_number)
    sealed_phone = _sealed(keys, persons.PHONE_FIELD, phone, privacy.mask_phone)
    _insert_guarded(session, """
        INSERT INTO persons (household_id, name, gender, relation, kind, id_number_sealed, id_number_hash,
                             id_number_masked, phone_sealed, phone_hash, phone_masked, tags, moved_in, origin)
        VALUES (:h, :name, :gender, :relation, :kind, :id_sealed, :id_hash, :id_masked, :phone_sealed, :phone_hash,
                :phone_masked, CAST(:tags AS text[]), :moved_in, 'field')""",
        {"h": household_id, "name": name, "gender": gender, "relation": relation, "kind": kind,
         "id_sealed": sealed_id["sealed"], "id_hash": sealed_id["hash"], "id_masked": sealed_id["masked"],
         "phone_sealed": sealed_phone["sealed"], "phone_hash": sealed_phone["hash"],
         "phone_masked": sealed_phone["masked"], "tags": tags, "moved_in": moved_in})
    fields = ["name", "id_number", "relation", "kind"] + (["phone"] if phone else []) + (["tags"] if tags else [])
    return _finish(session, who, before, "ledger_add_person", fields, note, also=also,
                   summary="moved from another household" if also else "")


def _current_person(session: Session, household_id: int, person_id: int) -> Any:
    row = session.execute(text("""SELECT id, relation, kind, phone_hash, tags, moved_in, moved_out FROM persons
                                  WHERE id = :p AND household_id = :h"""),
                          {"p": person_id, "h": household_id}).one_or_none()
    if row is None:
        raise NotFound(f"no resident {person_id} in household {household_id}", code="ledger.no_person",
                       person=person_id)
    if row.moved_out is not None:
        raise Conflict(f"resident {person_id} moved out on {row.moved_out} already", code="ledger.moved_out_already",
                       moved_out=row.moved_out.isoformat())
    return row


def move_out(session: Session, who: Principal, household_id: int, person_id: int, version: int | None, *,
             today: date, moved_out: date | None = None, note: str | None = None) -> HouseholdSheet:
    """Mark a resident moved out (迁出) on ``moved_out`` (default ``today``; not before they moved in, not after
    today + 1 day): their row is closed with reason 'left' and kept as history, never deleted."""
    note = _note(note)
    before = _begin(session, who, household_id, version)
    row = _current_person(session, household_id, person_id)
    when = _date(moved_out, today, earliest=row.moved_in or EARLIEST)
    session.execute(text("""UPDATE persons SET moved_out = :d, moved_out_reason = 'left', origin = 'field',
                            updated_at = now() WHERE id = :p"""), {"d": when, "p": person_id})
    return _finish(session, who, before, "ledger_move_out", ["moved_out"], note, summary=f"person {person_id} {when}")


def change_person(session: Session, who: Principal, household_id: int, person_id: int, version: int | None,
                  keys: Keys, *, phone: str | None = UNSET, relation: str | None = None,
                  kind: str | None = None, tags: Sequence[str] | None = None,
                  note: str | None = None) -> HouseholdSheet:
    """Correct a current resident: ``phone`` (None clears it; sealed, hashed and masked anew), ``relation`` (a
    second head is a Conflict), ``kind``, ``tags`` (the whole list). Fields not given stay; InvalidInput when
    nothing is given, nothing written when nothing differs."""
    note = _note(note)
    before = _begin(session, who, household_id, version)
    if phone is UNSET and relation is None and kind is None and tags is None:
        raise InvalidInput("nothing to change: give phone, relation, kind or tags", code="ledger.nothing_to_change")
    row = _current_person(session, household_id, person_id)
    sets: dict[str, Any] = {}
    if phone is not UNSET:
        keys = _keys(keys)
        number = phone_value(phone)
        if number is None:
            if row.phone_hash is not None:
                sets.update(phone_sealed=None, phone_hash=None, phone_masked=None)
        elif row.phone_hash is None or bytes(row.phone_hash) not in keys.digests(persons.PHONE_FIELD, number):
            stored = _sealed(keys, persons.PHONE_FIELD, number, privacy.mask_phone)
            sets.update(phone_sealed=stored["sealed"], phone_hash=stored["hash"], phone_masked=stored["masked"])
    if relation is not None and _choice(relation, PERSON_RELATIONS, "relation") != row.relation:
        if relation == "head":
            _no_second_head(session, household_id, person_id)
        sets["relation"] = relation
    if kind is not None and _choice(kind, RESIDENCE_KINDS, "kind") != row.kind:
        sets["kind"] = kind
    if tags is not None and _tags(tags) != sorted(row.tags or ()):
        sets["tags"] = _tags(tags)
    if not sets:
        return _load(session, who, household_id, history=True)
    assignments = ", ".join(f"{k} = CAST(:{k} AS text[])" if k == "tags" else f"{k} = :{k}" for k in sets)
    _insert_guarded(session, f"UPDATE persons SET {assignments}, origin = 'field', updated_at = now() WHERE id = :p",
                    {**sets, "p": person_id})
    fields = sorted({"phone" if k.startswith("phone") else k for k in sets})
    return _finish(session, who, before, "ledger_change_person", fields, note, summary=f"person {person_id}")


def correct_household(session: Session, who: Principal, household_id: int, version: int | None, *,
                      unit: str | None = None, floor: int | None = UNSET, room: str | None = None,
                      building_id: int | None = None, note: str | None = None) -> HouseholdSheet:
    """Correct the household's place: ``unit`` (1–20 characters), ``floor`` (-5 to 200; None clears it),
    ``room`` (1–50 characters), ``building_id`` (another building in the caller's scope, else OutOfScope). A
    household at that unit and room of the building already is a Conflict. Moving it changes both buildings'
    counts; the campaign targets keep the grid they were targeted in."""
    note = _note(note)
    before = _begin(session, who, household_id, version)
    if unit is None and floor is UNSET and room is None and building_id is None:
        raise InvalidInput("nothing to change: give unit, floor, room or building_id", code="ledger.nothing_to_change")
    sets: dict[str, Any] = {}
    for name, value, limit in (("unit", unit, MAX_UNIT), ("room", room, MAX_ROOM)):
        if value is not None:
            value = value.strip()
            if not value or len(value) > limit:
                raise InvalidInput(f"{name} must have 1–{limit} characters", field=name)
            if value != getattr(before, name):
                sets[name] = value
    if floor is not UNSET:
        if floor is not None and not -5 <= floor <= 200:
            raise InvalidInput(f"a floor is an integer from -5 to 200, got {floor}", field="floor")
        if floor != before.floor:
            sets["floor"] = floor
    if building_id is not None and building_id != before.building_id:
        scope, params = building_scope(who.household_scope)
        if session.execute(text(f"SELECT 1 FROM buildings b WHERE b.id = :b AND {scope}"),
                           {**params, "b": building_id}).scalar() is None:
            raise OutOfScope(f"no building {building_id} in your area")
        sets["building_id"] = building_id
    if not sets:
        return _load(session, who, household_id, history=True)
    target = (sets.get("building_id", before.building_id), sets.get("unit", before.unit), sets.get("room", before.room))
    taken = session.execute(text("SELECT 1 FROM households WHERE building_id = :b AND unit = :u AND room = :r "
                                 "AND id <> :id"), {"b": target[0], "u": target[1], "r": target[2],
                                                    "id": household_id}).scalar()
    if taken:
        raise Conflict(f"building {target[0]} has a household in unit {target[1]}, room {target[2]} already",
                       code="ledger.room_taken", unit=target[1], room=target[2])
    session.execute(text(f"UPDATE households SET {', '.join(f'{k} = :{k}' for k in sets)} WHERE id = :id"),
                    {**sets, "id": household_id})
    if "building_id" in sets:
        _building_counts(session, before.building_id, households=-1, residents=-before.residents)
        _building_counts(session, building_id, households=1, residents=before.residents)
    return _finish(session, who, before, "ledger_correct_household", sorted(sets), note,
                   summary=f"building {before.building_id} → {building_id}" if "building_id" in sets else "")
