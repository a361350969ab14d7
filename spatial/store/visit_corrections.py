"""Corrections of campaign visits (issue 19 item 11), as records of fact beside the visits (migration 0027).

* A visit (:mod:`spatial.store.campaigns`) is never changed; a correction adds a row with the new result, a new
  note (optional: the earlier note stays when none is given), the reason (required, 2–500 characters), who and
  when. The visit's current result is the latest correction's, else its own: every read that shows a result reads
  the view ``campaign_visits_current`` (:data:`CURRENT_VISITS`), so the list, the map, progress and the risk-zone
  figures agree.
* Who: the grid worker who recorded the visit, for the households of their grids; planners for the campaign's
  households in their area; admins. Another worker's visit is Forbidden; a household outside the caller's area,
  or a campaign they do not see, is OutOfScope (404); a household without a visit yet is Conflict.
* Counters (migration 0022) count visited households, which a correction does not change: they stay exact.
* Every correction is audited (action ``correct_visit``, with the old and new result and the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, OutOfScope
from spatial.store import audit
from spatial.store.campaigns import visible_campaign
from spatial.store.scope import grid_scope
from spatial.vocab import VISIT_RESULTS

CURRENT_VISITS = "campaign_visits_current"
"""The view of every visit with its current result and note (use it wherever a visit's result is shown)."""
CORRECTION_ROLES = ("grid_worker", "planner")
MIN_REASON, MAX_REASON = 2, 500
MAX_NOTE = 1000


@dataclass(frozen=True)
class Correction:
    id: int
    result: str
    note: str | None
    reason: str
    corrected_by: str
    corrected_at: datetime


@dataclass(frozen=True)
class CorrectedVisit:
    """A visit as it stands now: ``result`` / ``note`` current, ``recorded_result`` as recorded at the door,
    ``corrections`` oldest first (the history)."""

    id: int
    campaign_id: int
    household_id: int
    result: str
    recorded_result: str
    note: str | None
    visited_at: datetime
    worker: str
    corrections: tuple[Correction, ...]


def correct_visit(session: Session, who: Principal, campaign_id: int, household_id: int, *, result: str,
                  reason: str, note: str | None = None) -> CorrectedVisit:
    """Correct the result (and optionally the note) of the visit of ``household_id`` in ``campaign_id``, giving
    ``reason``; returns the visit as it stands with its history. Rules in the module docstring."""
    who.require_role(*CORRECTION_ROLES)
    if result not in VISIT_RESULTS:
        raise InvalidInput(f"result must be one of {', '.join(VISIT_RESULTS)}, got {result!r}")
    reason = (reason or "").strip()
    if not MIN_REASON <= len(reason) <= MAX_REASON:
        raise InvalidInput(f"a correction needs a reason of {MIN_REASON}–{MAX_REASON} characters",
                           code="visits.correction_reason")
    note = (note or "").strip() or None
    if note is not None and len(note) > MAX_NOTE:
        raise InvalidInput(f"a note is limited to {MAX_NOTE} characters")
    visible_campaign(session, who, campaign_id)
    scope, params = grid_scope(who.household_scope)
    row = session.execute(text(f"""
        SELECT v.id, v.worker, v.result
        FROM campaign_targets t JOIN grids g ON g.id = t.grid_id
        LEFT JOIN {CURRENT_VISITS} v ON v.campaign_id = t.campaign_id AND v.household_id = t.household_id
        WHERE t.campaign_id = :c AND t.household_id = :h AND {scope}"""),
        {**params, "c": campaign_id, "h": household_id}).one_or_none()
    if row is None:
        raise OutOfScope(f"household {household_id} is not in your part of campaign {campaign_id}")
    if row.id is None:
        raise Conflict(f"household {household_id} has no visit in campaign {campaign_id} to correct; record one",
                       code="visits.not_visited")
    if who.role == "grid_worker" and row.worker != who.username:
        raise Forbidden(f"the visit was recorded by {row.worker}; only they or a planner may correct it",
                        code="visits.not_yours", worker=row.worker)
    session.execute(text("""
        INSERT INTO campaign_visit_corrections (visit_id, result, note, reason, corrected_by)
        VALUES (:v, :result, :note, :reason, :by)"""),
        {"v": row.id, "result": result, "note": note, "reason": reason, "by": who.username})
    audit.record(session, who, "correct_visit", object_type="household", object_id=household_id,
                 purpose=f"campaign {campaign_id}: {row.result} → {result}: {reason}")
    return visit_as_corrected(session, row.id)


def visit_as_corrected(session: Session, visit_id: int) -> CorrectedVisit:
    """The visit ``visit_id`` as it stands now with its corrections, oldest first (no scope check: for callers
    that checked it)."""
    v = session.execute(text(f"SELECT id, campaign_id, household_id, result, recorded_result, note, visited_at, "
                             f"worker FROM {CURRENT_VISITS} WHERE id = :v"), {"v": visit_id}).one()
    history = session.execute(text("""
        SELECT id, result, note, reason, corrected_by, corrected_at FROM campaign_visit_corrections
        WHERE visit_id = :v ORDER BY id"""), {"v": visit_id}).all()
    return CorrectedVisit(**v._mapping, corrections=tuple(Correction(**c._mapping) for c in history))
