"""Households as field staff read them: masked, scoped and audited; and :func:`reveal`, the one unmasked read.

* Personal data (head of household name, ID number, phone; tags) leaves masked (:mod:`spatial.privacy`). Every
  read that returns households writes one audit row listing their ids, the fields and the purpose, in the same
  transaction (:func:`audit_read`, or a CTE of the statement that reads: :mod:`spatial.store.nearby`).
* An unmasked value needs :func:`reveal`: a reason, a grid worker of the household's grid (or an admin), and its
  own audit row; planners, inspectors and viewers cannot reveal.
* Household rows follow ``who.household_scope`` (:mod:`spatial.store.scope`); an id outside it is
  :class:`~spatial.errors.OutOfScope` (404, audited). Viewers and auditors get 403 on every household read
  (:meth:`~spatial.access.Principal.require_household_read`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import InvalidInput, OutOfScope
from spatial.personal_keys import PersonalKeys
from spatial.store import audit, persons
from spatial.store.scope import building_scope

PERSONAL_FIELDS = ("head_name", "head_id_number", "head_phone", "tags")
REVEALABLE = ("head_name", "head_id_number", "head_phone")
REVEAL_ROLES = ("grid_worker",)
MIN_REASON = 4


@dataclass(frozen=True)
class HouseholdView:
    """One household as field staff see it: personal fields already masked; ``location`` is its building's
    point on surface (lon, lat, EPSG:4326); distances in metres (``walk_m`` None unless walking mode);
    ``status`` 'visited' | 'unvisited' | 'not_targeted' for the campaign, None without one."""

    id: int
    building_id: int
    building_code: str | None
    building_name: str | None
    grid_id: int | None
    unit: str
    floor: int | None
    room: str
    residents: int
    head_name: str | None
    head_id_number: str | None
    head_phone: str | None
    tags: tuple[str, ...]
    location: tuple[float, float]
    distance_m: float | None = None
    walk_m: float | None = None
    status: str | None = None
    visit_result: str | None = None
    visited_at: datetime | None = None


def audit_read(session: Session, who: Principal, households: Sequence[HouseholdView], purpose: str) -> None:
    """One audit row per request that returned households: their ids, the (masked) fields, the purpose."""
    if households:
        audit.record_read(session, who, "read_masked", object_type="household",
                          object_id=[h.id for h in households], fields=PERSONAL_FIELDS,
                          purpose=purpose[:500])


def reveal(session: Session, who: Principal, household_id: int, reason: str,
           fields: Sequence[str] = REVEALABLE, *, per_hour: int = 30,
           keys: Callable[[], PersonalKeys] | None = None) -> dict[str, Any]:
    """The unmasked ``fields`` of one household, for a stated ``reason`` (at least 4 characters), audited.

    Only a grid worker of the household's grid (or an admin) may reveal; other roles get Forbidden, and a
    household outside the worker's grids is OutOfScope (404, the same answer as one that does not exist). At most
    ``per_hour`` reveals per user in any hour (TooManyRequests beyond). A household of the population ledger
    (a current head in ``persons``) has its head's ID and phone numbers opened with ``keys()`` (the personal-data
    keys, :mod:`spatial.personal_keys`; KeyUnavailable, 503, when they are not configured).
    """
    who.require_role(*REVEAL_ROLES)
    audit.require_below_rate(session, who, "reveal", per_hour)
    reason = (reason or "").strip()
    if len(reason) < MIN_REASON or len(reason) > 500:
        raise InvalidInput(f"say why you need the full values (a reason of {MIN_REASON}–500 characters)")
    unknown = set(fields) - set(REVEALABLE)
    if unknown or not fields:
        raise InvalidInput(f"fields to reveal must be among {', '.join(REVEALABLE)}")
    scope, params = building_scope(who.household_scope)
    row = session.execute(text(f"""
        SELECT h.id, h.head_name, h.head_id_number, h.head_phone FROM households h JOIN buildings b ON b.id = h.building_id
        WHERE h.id = :id AND {scope}"""), {**params, "id": household_id}).mappings().one_or_none()
    if row is None:
        raise OutOfScope(f"no household {household_id} in your area")
    values = persons.open_heads(session, [row], keys)[0] if {"head_id_number", "head_phone"} & set(fields) else row
    audit.record(session, who, "reveal", object_type="household", object_id=household_id, fields=list(fields),
                 purpose=reason)
    return {"id": row["id"], **{f: values[f] for f in fields}}
