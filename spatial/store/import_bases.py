"""What an upload's dry run was checked against, as an ETag: the import sends it back (If-Match) and is refused
(StaleEdit, 412) when the stored rows changed in between, so what is written is what the report showed.

* buildings and streets (:func:`layer_basis`): the rows of the file's ``origin`` (the importers match on
  ``(origin, origin_ref)``): their count and highest id, per table;
* a residents' ledger (:func:`residents_basis`): persons (count, highest id, latest update), households (count,
  highest id) and the buildings rows are placed in (count, coded ones, highest id).

:func:`require_basis` takes a transaction-scoped advisory lock on the import's key first, so two imports of the
same origin (or two ledgers) run one after the other, the second checked against what the first wrote.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.errors import InvalidInput, StaleEdit

LAYER_TABLES = {"buildings": ("buildings",), "streets": ("street_nodes", "street_edges")}
"""The tables an import of each kind writes, keyed on (origin, origin_ref)."""

_RESIDENTS = """
    SELECT concat_ws(':', (SELECT count(*) FROM persons), (SELECT max(id) FROM persons),
                     (SELECT max(updated_at) FROM persons), (SELECT count(*) FROM households),
                     (SELECT max(id) FROM households), (SELECT count(*) FROM buildings),
                     (SELECT count(code) FROM buildings), (SELECT max(id) FROM buildings))"""


def _etag(prefix: str, state: str) -> str:
    return f'"{prefix}{hashlib.sha256(state.encode()).hexdigest()[:16]}"'


def layer_basis(session: Session, kind: str, origin: str) -> str:
    """``"l<16 hex>"``: digest of the kind, the origin and, per table of :data:`LAYER_TABLES`, the count and highest
    id of its rows of that origin. InvalidInput for another kind."""
    if kind not in LAYER_TABLES:
        raise InvalidInput(f"no basis for imports of {kind!r}")
    parts = [kind, origin]
    for table in LAYER_TABLES[kind]:  # names from the constant above, never from input
        count, top = session.execute(text(f"SELECT count(*), max(id) FROM {table} WHERE origin = :o"),
                                     {"o": origin}).one()
        parts.append(f"{table}:{count}:{top}")
    return _etag("l", "|".join(parts))


def residents_basis(session: Session) -> str:
    """``"r<16 hex>"``: digest of the persons, households and buildings a ledger is placed and merged into."""
    return _etag("r", session.execute(text(_RESIDENTS)).scalar_one())


def require_basis(session: Session, key: str, basis: str, current) -> None:
    """StaleEdit unless ``basis`` (a dry run's ETag, weak or strong) equals ``current()`` (a function computing
    it now), after waiting for other imports of ``key`` (an advisory lock held until the transaction ends)."""
    session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"gridgov-import:{key}"})
    now = current()
    if basis.strip().removeprefix("W/") != now:
        raise StaleEdit(f"the stored data changed after the dry run (made on {basis}, now {now}): check the file "
                        "again and review the report", code="import.stale", current=now)
