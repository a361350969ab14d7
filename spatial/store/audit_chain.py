"""The audit log's hash chain: sealing committed rows, verifying the chain, anchors kept outside the database.

Rows are *inserted unchained*: the request path takes no lock and reads no chain head (a nearby read writes its
row in one autocommit statement; other requests write theirs early in a long transaction, and a head locked
until commit would queue every request behind the slowest). The insert trigger (migration 0010) queues the
row's id in ``audit_unsealed``; a row becomes visible there when its transaction commits, so rows committed
late are simply sealed later.

:func:`seal` — run by every server process every ``audit_seal_interval_s`` (:class:`Sealer`), and by
``gridgov audit seal`` / ``verify`` — appends the queued rows, in id order, to ``audit_chain`` under an
advisory lock (sealers wait for each other, nobody else does): position ``n`` holds ``audit_id`` and
``hash_n = sha256(hash_{n-1} ‖ canonical row)``, ``hash_0`` = sha256 of :data:`GENESIS`. The canonical row is
``jsonb_strip_nulls(to_jsonb(row))::text`` with the time zone UTC: every column is covered, and a column added
later as NULL for old rows leaves their hashes as they were. Hashes are computed here, in Python, not by a
database function that whoever controls the database could replace.

After each seal that added rows, one line ``<position> <hash hex> <sealed at>`` is appended to the anchor file
(the data directory's ``audit-anchors.txt``, outside the database), because whoever controls the database could
recompute a chain kept only inside it. :func:`verify` recomputes the whole chain and reports the first broken
position (a row changed or deleted after it was sealed, a chain entry missing), rows left unsealed for longer
than a limit, queued ids whose row is gone (deleted before it was sealed), rows that were never queued
(written around the insert trigger, e.g. with triggers disabled), and every anchor that the chain no longer
matches (a chain rewritten from some position on, or cut short).

Limit: a row deleted *before* it is sealed, together with its queue entry, leaves no trace in the database; the
window is the seal interval (seconds).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from spatial.errors import InvalidInput

log = logging.getLogger("gridgov.audit")

GENESIS = b"gridgov audit chain v1"
SEAL_LOCK = 0x61756474  # "audt": the advisory lock key sealers hold (transaction-scoped)
BATCH = 10_000  # rows per sealing transaction
ANCHOR_FILE = "audit-anchors.txt"

CANONICAL = "jsonb_strip_nulls(to_jsonb(a))::text"
_UTC = "SELECT set_config('TimeZone', 'UTC', true), set_config('search_path', 'pg_catalog, public', true)"


def genesis() -> bytes:
    return hashlib.sha256(GENESIS).digest()


def chain_hash(previous: bytes, canonical: str) -> bytes:
    """``sha256(previous ‖ canonical row as UTF-8)``."""
    return hashlib.sha256(previous + canonical.encode()).digest()


@dataclass(frozen=True)
class Anchor:
    """A chain position and its hash, as kept outside the database."""

    position: int
    hash: bytes

    def line(self) -> str:
        return f"{self.position} {self.hash.hex()}"

    @classmethod
    def parse(cls, value: str) -> Anchor:
        """``POSITION HASH`` or ``POSITION:HASH`` (hash in hex, 64 digits); InvalidInput otherwise."""
        parts = value.replace(":", " ").split()
        try:
            position, digest = int(parts[0]), bytes.fromhex(parts[1])
        except (IndexError, ValueError):
            raise InvalidInput(f"an anchor is 'POSITION HASH' (a number and 64 hex digits), not {value[:80]!r}") \
                from None
        if position < 1 or len(digest) != 32:
            raise InvalidInput(f"an anchor is 'POSITION HASH' (position ≥ 1, 64 hex digits), not {value[:80]!r}")
        return cls(position, digest)


def read_anchors(path: Path) -> list[Anchor]:
    """The anchors of an anchor file (blank lines and lines starting with '#' skipped); [] if there is none."""
    try:
        lines = Path(path).read_text().splitlines()
    except FileNotFoundError:
        return []
    return [Anchor.parse(line) for line in lines if line.strip() and not line.lstrip().startswith("#")]


def append_anchor(path: Path, anchor: Anchor) -> None:
    """Append one line to the anchor file (created 0600), flushed to disk."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, f"{anchor.line()} {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)


# -- sealing -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sealed:
    """What one :func:`seal` did: rows appended and the chain's head afterwards (None: the chain is empty);
    ``busy`` when another sealer held the lock (with ``wait=False``)."""

    rows: int
    head: Anchor | None
    busy: bool = False


def _head(conn: Connection) -> Anchor | None:
    row = conn.execute(text("SELECT position, hash FROM audit_chain ORDER BY position DESC LIMIT 1")).first()
    return Anchor(row.position, bytes(row.hash)) if row else None


def _seal_batch(conn: Connection, batch: int, after: int) -> tuple[int, Anchor | None, int]:
    """Seal up to ``batch`` queued rows of id > ``after``: (rows, head, last id sealed)."""
    conn.execute(text(_UTC))
    head = _head(conn)
    rows = conn.execute(text(f"SELECT a.id, {CANONICAL} AS canonical FROM audit_unsealed q "
                             "JOIN audit_log a ON a.id = q.audit_id WHERE q.audit_id > :after "
                             "ORDER BY q.audit_id LIMIT :n"), {"n": batch, "after": after}).all()
    if not rows:
        return 0, head, after
    position, previous = (head.position, head.hash) if head else (0, genesis())
    positions, ids, hashes = [], [], []
    for row in rows:
        previous = chain_hash(previous, row.canonical)
        position += 1
        positions.append(position)
        ids.append(row.id)
        hashes.append(previous)
    conn.execute(text("INSERT INTO audit_chain (position, audit_id, hash) SELECT * FROM "
                      "unnest(CAST(:p AS bigint[]), CAST(:a AS bigint[]), CAST(:h AS bytea[]))"),
                 {"p": positions, "a": ids, "h": hashes})
    conn.execute(text("DELETE FROM audit_unsealed WHERE audit_id = ANY(CAST(:a AS bigint[]))"), {"a": ids})
    return len(rows), Anchor(position, previous), ids[-1]


def seal(engine: Engine, *, anchors: Path | None = None, wait: bool = True, batch: int = BATCH) -> Sealed:
    """Append every committed, not yet sealed audit row to the chain (transactions of ``batch`` rows), then the
    new head to the ``anchors`` file (after the commit: a crash in between loses one anchor, never records one
    the chain does not have). ``wait=False`` returns at once (``busy``) if another sealer is at work."""
    total, head, after = 0, None, 0  # within one call, batches go on after the last id (past what they deleted)
    while True:
        with engine.begin() as conn:
            if wait:
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK})
            elif not conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": SEAL_LOCK}):
                return Sealed(total, head, busy=True)
            done, head, after = _seal_batch(conn, batch, after)
        total += done
        if done and anchors is not None and head is not None:
            append_anchor(anchors, head)
        if done < batch:
            return Sealed(total, head)


class Sealer:
    """A daemon thread sealing every ``interval_s`` seconds (:func:`seal`, not waiting for another process's
    sealer). A database that cannot be reached is retried at the next interval (logged once per outage)."""

    def __init__(self, engine: Engine, *, interval_s: float, anchors: Path | None) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.anchors = anchors
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="gridgov-audit-sealer", daemon=True)

    def start(self) -> Sealer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        failing = False
        while not self._stop.wait(self.interval_s):
            try:
                seal(self.engine, anchors=self.anchors, wait=False)
                failing = False
            except (SQLAlchemyError, OSError) as exc:
                if not failing:
                    log.warning("sealing the audit log failed (retried every %g s): %s", self.interval_s, exc)
                failing = True


# -- verifying ---------------------------------------------------------------------------------------------------
@dataclass
class Verdict:
    """What :func:`verify` found. ``ok`` when the chain recomputes, every anchor matches, no row is unsealed
    for longer than the limit and none is missing or was never queued."""

    length: int = 0
    head: Anchor | None = None
    broken: list[tuple[int, str]] = field(default_factory=list)  # (position, what is wrong), first ones
    broken_count: int = 0
    unsealed: int = 0
    unsealed_too_long: int = 0
    oldest_unsealed_s: float | None = None
    never_queued: list[int] = field(default_factory=list)  # audit ids, first ones
    queued_missing: list[int] = field(default_factory=list)  # queued audit ids whose row is gone, first ones
    anchors_checked: int = 0
    anchor_mismatches: list[tuple[Anchor, str]] = field(default_factory=list)

    @property
    def first_broken(self) -> int | None:
        return self.broken[0][0] if self.broken else None

    @property
    def ok(self) -> bool:
        return not (self.broken_count or self.unsealed_too_long or self.never_queued or self.queued_missing
                    or self.anchor_mismatches)

    def lines(self) -> Iterator[str]:
        """A report for a person, one finding a line."""
        yield f"chain: {self.length:,} sealed rows"
        for position, what in self.broken:
            yield f"BROKEN at position {position}: {what}"
        if self.broken_count > len(self.broken):
            yield f"... {self.broken_count:,} broken positions in all"
        if self.unsealed:
            age = f", oldest {self.oldest_unsealed_s:.0f} s" if self.oldest_unsealed_s is not None else ""
            yield (f"{'UNSEALED' if self.unsealed_too_long else 'unsealed'}: {self.unsealed:,} rows not yet "
                   f"sealed{age}" + (f" ({self.unsealed_too_long:,} beyond the limit)" if self.unsealed_too_long
                                     else ""))
        if self.never_queued:
            yield ("NOT QUEUED: rows written around the insert trigger (never queued for sealing), ids "
                   + ", ".join(map(str, self.never_queued)))
        if self.queued_missing:
            yield "DELETED BEFORE SEALING: queued ids whose row is gone: " + ", ".join(map(str, self.queued_missing))
        for anchor, what in self.anchor_mismatches:
            yield f"ANCHOR {anchor.position} {anchor.hash.hex()[:16]}…: {what}"
        if self.anchors_checked:
            yield f"anchors: {self.anchors_checked - len(self.anchor_mismatches)} of {self.anchors_checked} match"
        if self.head:
            yield f"head: {self.head.line()}  (keep this line outside the database; check it later with --anchor)"
        yield "OK: the audit log is intact" if self.ok else "FAILED: the audit log was changed"


MAX_LISTED = 20


def verify(engine: Engine, *, anchors: Iterable[Anchor] = (), max_unsealed_s: float = 300.0) -> Verdict:
    """Recompute the chain from the rows as they are now (see the module docstring); read-only, one snapshot."""
    verdict = Verdict()
    expected: dict[int, list[Anchor]] = {}
    for anchor in anchors:
        expected.setdefault(anchor.position, []).append(anchor)
    verdict.anchors_checked = sum(map(len, expected.values()))

    def broke(position: int, what: str) -> None:
        verdict.broken_count += 1
        if len(verdict.broken) < MAX_LISTED:
            verdict.broken.append((position, what))

    with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn, conn.begin():
        conn.execute(text(_UTC))
        previous, position = genesis(), 0
        rows = conn.execution_options(stream_results=True, yield_per=5000).execute(text(
            f"SELECT c.position, c.audit_id, c.hash, {CANONICAL} AS canonical FROM audit_chain c "
            "LEFT JOIN audit_log a ON a.id = c.audit_id ORDER BY c.position"))
        for row in rows:
            stored = bytes(row.hash)
            if row.position != position + 1:
                broke(position + 1, f"chain entries {position + 1}..{row.position - 1} are missing")
            if row.canonical is None:
                broke(row.position, f"audit row {row.audit_id} was deleted")
            elif chain_hash(previous, row.canonical) != stored:
                broke(row.position, f"audit row {row.audit_id} was changed (or the chain before it)")
            for anchor in expected.pop(row.position, ()):
                if anchor.hash != stored:
                    verdict.anchor_mismatches.append((anchor, "the chain was rewritten at or before this position"))
            previous, position = stored, row.position  # go on from the stored hash: later breaks are found too
            verdict.length += 1
        verdict.head = Anchor(position, previous) if position else None
        for missing in expected.values():
            for anchor in missing:
                verdict.anchor_mismatches.append(
                    (anchor, f"beyond the chain's head ({position}): sealed rows were removed, or an older backup "
                             "was restored"))
        unsealed = conn.execute(text("""
            SELECT count(*) AS n, count(*) FILTER (WHERE a.at < clock_timestamp() - make_interval(secs => :limit))
                   AS too_long, extract(epoch FROM clock_timestamp() - min(a.at)) AS oldest_s,
                   (array_agg(a.id ORDER BY a.id) FILTER (WHERE q.audit_id IS NULL))[1:20] AS never_queued
            FROM audit_log a LEFT JOIN audit_unsealed q ON q.audit_id = a.id
            WHERE NOT EXISTS (SELECT FROM audit_chain c WHERE c.audit_id = a.id)"""),
            {"limit": max_unsealed_s}).one()
        verdict.unsealed, verdict.unsealed_too_long = unsealed.n, unsealed.too_long
        verdict.oldest_unsealed_s = float(unsealed.oldest_s) if unsealed.oldest_s is not None else None
        verdict.never_queued = list(unsealed.never_queued or [])
        verdict.queued_missing = list(conn.scalars(text(
            "SELECT q.audit_id FROM audit_unsealed q "
            "WHERE NOT EXISTS (SELECT FROM audit_log a WHERE a.id = q.audit_id) "
            "ORDER BY 1 LIMIT 20")))
    return verdict
