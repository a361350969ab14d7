"""The audit log: who read, revealed, exported or changed what, when, from where and why.

Rows are append-only: a trigger refuses UPDATE, DELETE and TRUNCATE, and the service's database role
(:mod:`spatial.store.privileges`) has no such privilege. The database stamps each row (migration 0010): its
``id``, ``at`` (the database clock), ``role`` (the user's, from ``users``; NULL for a name that is no account)
and ``db_user`` (the database login), whatever the client sends; committed rows are chained by hash off the
request path (:mod:`spatial.store.audit_chain`). Write the entry of an action in the same
transaction as the action (:func:`record`), so an action that is rolled back leaves no false record and
vice versa. A *refused* action rolls its transaction back, so its row is written in a transaction of its
own (:func:`record_apart`).

**Never on a replica**: a session reading from a hot standby (:mod:`spatial.store.replica`) writes its rows,
and counts them for the rate limits, through its primary companion (:func:`~spatial.store.replica.primary_of`),
committed with the request before the answer leaves.

The log also answers "how often lately" (:func:`count_recent`, for the login and reveal rate limits) and
an auditor's questions (:func:`search`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from spatial.access import Principal
from spatial.errors import TooManyRequests
from spatial.store.models import AuditEntry
from spatial.store.replica import primary_of

log = logging.getLogger("gridgov.audit")
MAX_TEXT = 500


ObjectId = str | int | Sequence[int] | None
_ID_LIST = re.compile(r"[0-9]{1,18}(,[0-9]{1,18})*")


def _household_ids(object_type: str | None, object_id: ObjectId, households: Sequence[int] | None) -> list[int]:
    """The households a row concerns: ``households`` if given, else a household row's ``object_id`` (an id, a
    sequence of ids or a comma-joined list of them; the same reading as migration 0009's for earlier rows)."""
    if households is not None:
        return [int(h) for h in households]
    if object_type != "household" or object_id is None:
        return []
    if isinstance(object_id, int):
        return [object_id]
    if isinstance(object_id, str):
        return [int(i) for i in object_id.split(",")] if _ID_LIST.fullmatch(object_id) else []
    return [int(i) for i in object_id]


def _object_id(object_id: ObjectId) -> str | None:
    """``object_id`` as stored: a sequence of ids comma-joined and kept whole (they are ids, and searchable in
    ``household_ids``), any other text cut to :data:`MAX_TEXT` characters (it may come from a client)."""
    if object_id is None or isinstance(object_id, int | str):
        return None if object_id is None else str(object_id)[:MAX_TEXT]
    return ",".join(str(int(i)) for i in object_id)


def _row(who: Principal | None, action: str, *, object_type: str | None = None, object_id: ObjectId = None,
         households: Sequence[int] | None = None, fields: Sequence[str] = (), purpose: str | None = None,
         result: str = "ok", client_addr: str | None = None, actor: str | None = None) -> dict:
    return {"username": who.username if who else actor, "role": who.role if who else None, "action": action,
            "object_type": object_type, "object_id": _object_id(object_id),
            "household_ids": _household_ids(object_type, object_id, households),
            "fields": list(fields), "purpose": purpose[:MAX_TEXT] if purpose else purpose,
            "result": result[:MAX_TEXT], "client_addr": client_addr or (who.client_addr if who else None)}


def record(session: Session, who: Principal | None, action: str, **entry) -> None:
    """Add one row in ``session``'s transaction: ``object_type``, ``object_id`` (a sequence of ids is stored
    comma-joined and whole, any text cut to :data:`MAX_TEXT` characters), ``households`` (the ids of the
    households whose data the action touched, searchable: :attr:`AuditFilter.household`; a ``household`` row's
    ``object_id`` gives them by default), ``fields``, ``purpose`` and ``result`` (cut to :data:`MAX_TEXT`
    characters), ``client_addr`` (default: the caller's); ``actor``, the user name when there is no ``who``
    (domain code that knows only who acts, e.g. an edit's)."""
    primary_of(session).execute(insert(AuditEntry).values(**_row(who, action, **entry)))


def read_entry_sql(*, source: str | None = None, object_id: str = ":object_id",
                   household_ids: str = "CAST(:household_ids AS bigint[])") -> str:
    """The INSERT of a read's audit row (parameters as :func:`read_entry_params` gives them) that also makes its
    transaction commit without waiting for the disk (``synchronous_commit off``, this transaction only).

    With ``source`` (a FROM item of the enclosing statement, e.g. a CTE of the rows just read) the row is
    written only if ``source`` has rows, and ``object_id`` and ``household_ids`` may be aggregates over them (a
    text, a ``bigint[]``); the INSERT can then be a CTE of the statement that reads (:mod:`spatial.store.nearby`).
    """
    rows = f", {source} HAVING count(*) > 0" if source else ""
    return f"""INSERT INTO audit_log (username, role, action, object_type, object_id, household_ids, fields, purpose,
                                      result, client_addr)
    SELECT :username, :role, :action, :object_type, {object_id}, {household_ids}, CAST(:fields AS text[]), :purpose,
           :result, :client_addr
    FROM (SELECT set_config('synchronous_commit', 'off', true)) relaxed{rows}"""


def read_entry_params(who: Principal, action: str, **entry) -> dict:
    """The parameters of :func:`read_entry_sql` (``entry`` as for :func:`record`)."""
    return _row(who, action, **entry)


_RECORD_READ = text(read_entry_sql())


def record_read(session: Session, who: Principal, action: str, **entry) -> None:
    """:func:`record` for a transaction that only *reads* (nearby, unvisited lists): its commit does not wait
    for the disk. A server crash within the WAL writer's delay (0.2 s by default) may lose the row of a read
    just answered; never of a change, since a transaction that changes data must not use this."""
    primary_of(session).execute(_RECORD_READ, read_entry_params(who, action, **entry))


def record_apart(sessions: sessionmaker[Session], who: Principal | None, action: str, **entry) -> None:
    """:func:`record` in a transaction of its own (for refusals, whose request transaction rolls back).

    A database that cannot be reached loses the row (logged), rather than turning the refusal into an error.
    """
    try:
        with sessions.begin() as session:
            record(session, who, action, **entry)
    except SQLAlchemyError as exc:
        log.warning("could not write the audit row of a refused %s: %s", action, exc)


def count_recent(session: Session, action: str, window_s: int, *, username: str | None = None,
                 object_id: str | None = None, client_addr: str | None = None, refused: bool = False,
                 result: str | None = None) -> int:
    """Rows of ``action`` in the last ``window_s`` seconds matching the given user name / object / address;
    ``refused=True`` counts only refusals (``result`` starting with 'refused'), else only successes; ``result``
    (a prefix, e.g. 'refused 401') counts only the rows whose result starts with it."""
    if result is None:
        outcome = AuditEntry.result.startswith("refused") if refused else AuditEntry.result.not_like("refused%")
    else:
        outcome = AuditEntry.result.startswith(result, autoescape=True)
    query = select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.at > func.now() - timedelta(seconds=window_s), outcome)
    for column, value in ((AuditEntry.username, username), (AuditEntry.object_id, object_id),
                          (AuditEntry.client_addr, client_addr)):
        if value is not None:
            query = query.where(column == value)
    return primary_of(session).scalar(query) or 0


def require_below_rate(session: Session, who: Principal, action: str, per_hour: int) -> None:
    """TooManyRequests if ``who`` has done ``action`` ``per_hour`` times in the last hour."""
    done = count_recent(session, action, 3600, username=who.username)
    if done >= per_hour:
        raise TooManyRequests(f"you have made {done} {action} requests in the last hour (at most {per_hour}); "
                              "ask your supervisor if you need more", retry_after_s=600)


@dataclass(frozen=True)
class AuditFilter:
    """What an auditor asks for; every field optional. Times are instants (timezone-aware). ``household``: rows
    naming that household among those whose data were read, revealed, exported or changed."""

    username: str | None = None
    action: str | None = None
    object_type: str | None = None
    object_id: str | None = None
    household: int | None = None
    result: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def given(self) -> list[str]:
        return [name for name, value in vars(self).items() if value is not None]


def search(session: Session, where: AuditFilter, *, limit: int = 100, offset: int = 0) -> tuple[int, list[AuditEntry]]:
    """(number of matching rows, the page of them newest first). ``result`` matches as a prefix; ``household``
    is looked up in ``household_ids`` (GIN index: ``@>``)."""
    conditions = [getattr(AuditEntry, name) == getattr(where, name)
                  for name in ("username", "action", "object_type", "object_id") if getattr(where, name) is not None]
    if where.household is not None:
        conditions.append(AuditEntry.household_ids.contains([where.household]))
    if where.result is not None:
        conditions.append(AuditEntry.result.startswith(where.result, autoescape=True))
    if where.since is not None:
        conditions.append(AuditEntry.at >= where.since)
    if where.until is not None:
        conditions.append(AuditEntry.at < where.until)
    total = session.scalar(select(func.count()).select_from(AuditEntry).where(*conditions)) or 0
    rows = session.scalars(select(AuditEntry).where(*conditions)
                           .order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit).offset(offset)).all()
    return total, list(rows)
