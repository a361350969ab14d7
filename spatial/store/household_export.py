"""Households of a community for an export bundle: masked unless revealed, and always audited.

Personal fields (head name, ID number, phone) are masked with :mod:`spatial.privacy` unless the caller
reveals them; the tags (health status, special groups) are left out unless revealed. Every call writes one
audit entry in the caller's transaction (who, which community and households, which fields, why, masked or
revealed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import TEAM_ROLES, Principal
from spatial.errors import Forbidden
from spatial.personal_keys import PersonalKeys
from spatial.privacy import mask_record
from spatial.store import audit
from spatial.store.persons import open_heads
from spatial.store.scope import building_scope

PERSONAL = ("head_name", "head_id_number", "head_phone")
REVEALED_EXPORTS_PER_HOUR = 10  # default of settings.reveal_exports_max_per_hour


def community_households(session: Session, who: Principal, community_code: str, *, reveal: bool = False,
                         purpose: str | None = None, per_hour: int = REVEALED_EXPORTS_PER_HOUR,
                         keys: Callable[[], PersonalKeys] | None = None) -> list[dict[str, Any]]:
    """Rows (building_code, building_id, unit, floor, room, residents, head fields[, tags]) of the households
    in the buildings of ``community_code`` within the caller's household scope, ordered by building and room.
    Forbidden for roles that read no household data (viewers, auditors); masks, audits and limits unmasked
    exports to ``per_hour`` per user (TooManyRequests beyond). Revealed, a ledger household's head ID and phone
    are opened from ``persons`` with ``keys()`` (:func:`spatial.store.persons.open_heads`). Grid-team roles
    (police, building and unit heads…, :data:`spatial.access.TEAM_ROLES`) export nothing: they read households one
    place at a time on the field page (decision 0020)."""
    if who.role in TEAM_ROLES:
        raise Forbidden(f"a {who.role} reads households on the field page; exports are the office's",
                        code="team.no_export")
    scope, params = building_scope(who.require_household_read())
    if reveal:
        audit.require_below_rate(session, who, "export_reveal", per_hour)
    rows = session.execute(text(f"""
        SELECT h.id, b.code AS building_code, b.id AS building_id, h.unit, h.floor, h.room, h.residents,
               h.head_name, h.head_id_number, h.head_phone, array_to_string(h.tags, ',') AS tags
        FROM households h JOIN buildings b ON b.id = h.building_id
        WHERE b.community_code = :code AND {scope} ORDER BY b.code, b.id, h.unit, h.room"""),
        {**params, "code": community_code}).mappings().all()
    if reveal:
        rows = open_heads(session, rows, keys)
    fields = [*PERSONAL, "tags"] if reveal else list(PERSONAL)
    audit.record(session, who, "export_reveal" if reveal else "export_masked", object_type="community_households",
                 object_id=community_code, households=[r["id"] for r in rows], fields=fields, purpose=purpose,
                 result=f"{len(rows)} households" + ("" if reveal else " (masked)"))
    left_out = {"id"} if reveal else {"id", "tags"}  # the id is for the audit row, not a column of the bundle
    shown = (dict(r) if reveal else mask_record(dict(r)) for r in rows)
    return [{k: v for k, v in row.items() if k not in left_out} for row in shown]
