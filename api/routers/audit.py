"""The audit log for auditors (审计): who read, revealed, exported, changed or was refused what, and why."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CurrentUser, SessionDep
from api.schemas import AuditEntryPublic, AuditPagePublic
from api.types import BigId, Instant
from spatial.store import audit

router = APIRouter(prefix="/api/audit", tags=["audit · 审计"])

AUDIT_ROLES = ("auditor",)  # and admin
Text = Annotated[str | None, Query(max_length=200)]
HouseholdQ = Annotated[BigId | None, Query(description="a household id (住户)")]


@router.get("", response_model=AuditPagePublic, summary="Search the audit log (查询审计日志), newest first",
            description="Auditors and administrators only. Every search is itself written to the log. `result` "
                        "matches as a prefix (e.g. `refused`); `since`/`until` are ISO 8601 instants; `household` "
                        "finds every row that read, revealed, exported or changed that household's data (nearby and "
                        "unvisited lists, coverage reports, reveals, visits, community exports).")
def search_audit(session: SessionDep, who: CurrentUser, username: Text = None, action: Text = None,
                 object_type: Text = None, object_id: Text = None, household: HouseholdQ = None, result: Text = None,
                 since: Annotated[Instant | None, Query()] = None, until: Annotated[Instant | None, Query()] = None,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0) -> AuditPagePublic:
    who.require_role(*AUDIT_ROLES)
    where = audit.AuditFilter(username=username, action=action, object_type=object_type, object_id=object_id,
                              household=household, result=result, since=since, until=until)
    total, rows = audit.search(session, where, limit=limit, offset=offset)
    audit.record(session, who, "audit_search", object_type="audit_log", fields=where.given(),
                 result=f"{len(rows)} of {total} rows")
    return AuditPagePublic(total=total, offset=offset, entries=[AuditEntryPublic.model_validate(r) for r in rows])
