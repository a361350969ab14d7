"""The audit log: who read, revealed, exported or changed what, when, from where and why.

Rows are append-only (a trigger refuses UPDATE and DELETE). Write the entry in the same transaction as the
action it records, so an action that is rolled back leaves no false record and vice versa.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.store.models import AuditEntry


def record(session: Session, who: Principal | None, action: str, *, object_type: str | None = None,
           object_id: str | int | None = None, fields: Sequence[str] = (), purpose: str | None = None,
           result: str = "ok") -> None:
    session.add(AuditEntry(
        username=who.username if who else None, role=who.role if who else None, action=action,
        object_type=object_type, object_id=None if object_id is None else str(object_id), fields=list(fields),
        purpose=purpose, result=result, client_addr=who.client_addr if who else None,
    ))
    session.flush()
