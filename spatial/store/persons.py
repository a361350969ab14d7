"""The SQL of the population ledger (实有人口): staging an import, placing its rows, merging it, lookups, reveal.

An import (:mod:`spatial.io.residents`) COPYs its checked rows into the temporary table ``stage_persons`` (sealed
and hashed already: no plaintext ID or phone number reaches the database, not even a temporary table), then:

1. :func:`place` gives every row a building: by 19-digit code, else by name (exactly one building of that name),
   else by position (EPSG:4326 lon/lat; the footprint containing it, else the nearest footprint within
   ``max_distance_m`` metres, measured on geography). Buildings outside ``scope`` are not found.
2. :func:`findings` lists what only the whole ledger shows (unknown buildings, one person in two households,
   listed twice, two heads of one household) as (line, field, reason).
3. :func:`merge` writes it (see its docstring): idempotent, history kept, never a DELETE.

Dates are ``date`` (no time zone). Everything runs in the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Scope
from spatial.personal_keys import KeyUnavailable, PersonalKeys
from spatial.store.bulk import _copy_rows, _cursor, _raw
from spatial.store.scope import building_scope
from spatial.vocab import HOUSEHOLD_TAGS

_STAGED = """line integer PRIMARY KEY, building_code text, building_name text, lon double precision,
    lat double precision, unit text, floor smallint, room text, name text, gender text, relation text,
    kind text, id_sealed bytea, id_hash bytea, id_masked text, phone_sealed bytea, phone_hash bytea,
    phone_masked text, tags text[], isolation_from date, isolation_to date, moved_in date, moved_out date,
    ledger_row bytea"""  # stage_input's columns, and the first ones of stage_persons
STAGE_FIELDS = tuple(column.split()[0] for column in _STAGED.split(","))
"""A checked row's columns; an *unchanged* row (its fingerprint matches a current person's, see
:func:`unchanged_rows`) is staged as ``line`` and ``ledger_row`` alone (its ``id_hash`` NULL marks it) and
:func:`place` copies the rest from that person."""
LOCK = 0x6772_6964_7065_7273  # advisory lock of ledger writes and key rotations ("gridpers")
ID_FIELD, PHONE_FIELD = "id_number", "phone"  # the field names the values are sealed and hashed under


BULK_SETTINGS = {"work_mem": "256MB", "jit": "off"}
"""Settings of an import's statements (:func:`bulk_settings`): sorts and hashes of a million staged rows in memory
(the server's default 32 MB spills them to disk), no JIT compilation (seconds per statement on estimates of
millions of rows that it does not win back)."""


@contextmanager
def bulk_settings(session: Session) -> Iterator[None]:
    """:data:`BULK_SETTINGS` for the statements inside, the caller's values back afterwards (one import holds the
    ledger lock at a time, so at most one session uses the larger work_mem)."""
    before = {name: session.execute(text("SELECT current_setting(:n)"), {"n": name}).scalar_one()
              for name in BULK_SETTINGS}
    for name, value in BULK_SETTINGS.items():
        session.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
    try:
        yield
    finally:
        for name, value in before.items():
            session.execute(text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})


def lock(session: Session) -> None:
    """Take the ledger lock (until the transaction ends): ledger edits wait, and :func:`unchanged_rows` stays
    true until the merge."""
    _raw(session, "SELECT pg_advisory_xact_lock(%d)" % LOCK)


def unchanged_rows(session: Session, scope: Scope) -> bytes:
    """The match keys of the current persons of ``scope`` that a ledger row wrote (``persons.ledger_row``, migration
    0028), concatenated, 16 bytes each, in no order: the first 16 bytes of SHA-256(ledger_row ‖ the UTF-8 code of the
    person's building now). A row of a new ledger is unchanged when its fingerprint and its building code give one
    of these (a building re-coded since, or now outside ``scope``, makes its rows be checked again). Take
    :func:`lock` first."""
    where, params = building_scope(scope)
    return session.execute(text(f"""
        SELECT coalesce(string_agg(k, ''::bytea), ''::bytea) FROM (
            SELECT substring(sha256(p.ledger_row || convert_to(b.code, 'UTF8')) FROM 1 FOR 16) AS k
            FROM persons p JOIN households h ON h.id = p.household_id JOIN buildings b ON b.id = h.building_id
            WHERE p.moved_out IS NULL AND p.ledger_row IS NOT NULL AND b.code IS NOT NULL AND {where}) keys"""),
        params).scalar_one()


def stage(session: Session, rows: Iterable[tuple], kept_hashes: Iterable[bytes] = ()) -> int:
    """Create (empty) the temporary tables and COPY ``rows`` (tuples of :data:`STAGE_FIELDS`) into
    ``stage_input``; ``kept_hashes`` are ID hashes of rejected rows (not marked moved out). Takes :func:`lock`.
    Rows staged."""
    lock(session)
    _raw(session, f"CREATE TEMP TABLE IF NOT EXISTS stage_input ({_STAGED}) ON COMMIT DROP")
    _raw(session, f"""CREATE TEMP TABLE IF NOT EXISTS stage_persons ({_STAGED}, building_id bigint, distance_m real,
                      household_id bigint, same boolean NOT NULL) ON COMMIT DROP""")
    _raw(session, "CREATE TEMP TABLE IF NOT EXISTS stage_kept (id_hash bytea) ON COMMIT DROP")
    _raw(session, "CREATE TEMP TABLE IF NOT EXISTS stage_touched (household_id bigint) ON COMMIT DROP")
    _raw(session, "TRUNCATE stage_input, stage_persons, stage_kept, stage_touched")
    count = _copy_rows(session, "stage_input", STAGE_FIELDS, rows)
    _copy_rows(session, "stage_kept", ("id_hash",), ((h,) for h in kept_hashes))
    return count


_COLUMNS = ", ".join(STAGE_FIELDS)


def place(session: Session, scope: Scope, max_distance_m: float, *, unchanged: int = 0) -> None:
    """Fill ``stage_persons`` from ``stage_input`` with every row's ``building_id`` (and ``distance_m`` for rows
    placed by position; 0 inside) and, where the household exists, ``household_id``. The ``unchanged`` rows staged
    by fingerprint alone (``same``) are copied from their current person (household, building, every field);
    RuntimeError if one of them has no such person any more (impossible under :func:`lock`)."""
    where, params = building_scope(scope)
    session.execute(text(f"""
        INSERT INTO stage_persons ({_COLUMNS}, building_id, household_id, same)
        SELECT i.{_COLUMNS.replace(", ", ", i.")}, b.id, h.id, false
        FROM stage_input i
        LEFT JOIN buildings b ON i.building_code IS NOT NULL AND b.code = i.building_code AND {where}
        LEFT JOIN households h ON h.building_id = b.id AND h.unit = i.unit AND h.room = i.room
        WHERE i.id_hash IS NOT NULL"""), params)
    copied = session.execute(text(f"""
        INSERT INTO stage_persons ({_COLUMNS}, building_id, household_id, same)
        SELECT i.line, b.code, NULL, NULL, NULL, h.unit, h.floor, h.room, p.name, p.gender, p.relation, p.kind,
               p.id_number_sealed, p.id_number_hash, p.id_number_masked, p.phone_sealed, p.phone_hash,
               p.phone_masked, p.tags, p.isolation_from, p.isolation_to, p.moved_in, NULL, i.ledger_row,
               b.id, h.id, true
        FROM stage_input i
        JOIN persons p ON p.ledger_row = i.ledger_row AND p.moved_out IS NULL
        JOIN households h ON h.id = p.household_id JOIN buildings b ON b.id = h.building_id
        WHERE i.id_hash IS NULL""")).rowcount
    if copied != unchanged:
        raise RuntimeError(f"{unchanged - copied} unchanged ledger rows lost their person during the import "
                           "(ledger lock not held?)")
    session.execute(text(f"""
        UPDATE stage_persons s SET building_id = n.id
        FROM (SELECT b.name, min(b.id) AS id FROM buildings b
              WHERE b.name IN (SELECT DISTINCT building_name FROM stage_persons
                               WHERE building_code IS NULL AND building_name IS NOT NULL) AND {where}
              GROUP BY b.name HAVING count(*) = 1) n
        WHERE s.building_code IS NULL AND s.building_name = n.name"""), params)
    session.execute(text(f"""
        UPDATE stage_persons s SET building_id = hit.id, distance_m = hit.d
        FROM (SELECT p.line, f.id, f.d
              FROM stage_persons p
              CROSS JOIN LATERAL (SELECT point FROM (SELECT ST_SetSRID(ST_MakePoint(p.lon, p.lat), 4326) AS point) x) q
              CROSS JOIN LATERAL (
                  SELECT b.id, ST_Distance(b.footprint::geography, q.point::geography) AS d
                  FROM buildings b
                  WHERE ST_DWithin(b.footprint::geography, q.point::geography, :max_m) AND {where}
                  ORDER BY b.footprint::geography <-> q.point::geography, b.id LIMIT 1) f
              WHERE p.building_code IS NULL AND p.building_name IS NULL AND p.lon IS NOT NULL) hit
        WHERE s.line = hit.line"""), {**params, "max_m": max_distance_m})
    _raw(session, "CREATE INDEX IF NOT EXISTS stage_persons_hash ON stage_persons (id_hash)")
    _raw(session, "ANALYZE stage_persons")


def findings(session: Session, max_distance_m: float, *, unchanged: int = 0) -> list[tuple[int, str, str]]:
    """(line, field, reason) of every staged row the ledger as a whole rejects, by line. Fields are
    ``building_code``, ``building_name``, ``lon``, ``id_number`` and ``relation``.

    A person listed twice, or a second head, needs a checked row or an unchanged row listed twice (identical
    lines): unchanged rows of distinct lines are distinct current persons, at most one current head a household
    (the unique indexes of migration 0016). With ``unchanged`` rows staged (:func:`place`), only the ID numbers
    and households of those suspects are looked at."""
    suspects, of_suspects, heads_of_suspects = "", "", ""
    if unchanged:
        suspects = """suspects AS (
            SELECT id_hash, building_id, unit, room, relation FROM current WHERE NOT same OR ledger_row IN (
                SELECT ledger_row FROM stage_persons WHERE same GROUP BY ledger_row HAVING count(*) > 1)),"""
        of_suspects = "AND id_hash IN (SELECT id_hash FROM suspects)"
        heads_of_suspects = """AND (building_id, unit, room) IN (
            SELECT building_id, unit, room FROM suspects WHERE relation = 'head')"""
    rows = session.execute(text(f"""
        WITH current AS NOT MATERIALIZED (
            SELECT * FROM stage_persons WHERE moved_out IS NULL AND building_id IS NOT NULL),
        {suspects}
        twice AS (SELECT id_hash FROM current WHERE TRUE {of_suspects} GROUP BY id_hash HAVING count(*) > 1),
        heads AS (SELECT building_id, unit, room FROM current WHERE relation = 'head' {heads_of_suspects}
                  GROUP BY building_id, unit, room HAVING count(*) > 1)
        SELECT s.line, CASE WHEN s.building_code IS NOT NULL THEN 'building_code'
                            WHEN s.building_name IS NOT NULL THEN 'building_name' ELSE 'lon' END,
               CASE WHEN s.building_code IS NOT NULL
                    THEN 'unknown building code ' || s.building_code || ' (no such building in your area)'
                    WHEN s.building_name IS NOT NULL AND n.count IS NULL
                    THEN 'unknown building ' || quote_literal(s.building_name)
                         || ' (no building of that name in your area)'
                    WHEN s.building_name IS NOT NULL
                    THEN 'building name ' || quote_literal(s.building_name) || ' is ambiguous (' || n.count
                         || ' buildings): give the building code'
                    ELSE 'no building at or within ' || CAST(:max_m AS real) || ' m of the position' END
        FROM stage_persons s
        LEFT JOIN (SELECT name, count(*) FROM buildings GROUP BY name) n
               ON s.building_code IS NULL AND n.name = s.building_name
        WHERE s.building_id IS NULL
        UNION ALL
        SELECT line, 'id_number', CASE WHEN same_household
                                  THEN 'listed twice in the same household (first on line ' || first || ')'
                                  ELSE 'a person in two households (also on line ' || first || ')' END
        FROM (SELECT line, first_value(line) OVER w AS first,
                     (building_id, unit, room) = (first_value(building_id) OVER w, first_value(unit) OVER w,
                                                  first_value(room) OVER w) AS same_household
              FROM current WHERE id_hash IN (SELECT id_hash FROM twice)
              WINDOW w AS (PARTITION BY id_hash ORDER BY line)) d
        WHERE line <> first
        UNION ALL
        SELECT line, 'relation', 'a second head of household (户主) of this household (the first on line ' || first || ')'
        FROM (SELECT line, first_value(line) OVER (PARTITION BY building_id, unit, room ORDER BY line) AS first
              FROM current WHERE relation = 'head' AND (building_id, unit, room) IN (SELECT * FROM heads)) h
        WHERE line <> first
        ORDER BY 1"""), {"max_m": max_distance_m}).all()
    return [(int(line), field, reason) for line, field, reason in rows]


def drop_lines(session: Session, lines: Sequence[int]) -> None:
    """Leave staged rows out of the merge (their ID hashes are kept: they are not marked moved out)."""
    session.execute(text("""
        WITH gone AS (DELETE FROM stage_persons WHERE line = ANY(CAST(:lines AS integer[])) RETURNING id_hash)
        INSERT INTO stage_kept SELECT id_hash FROM gone"""), {"lines": list(lines)})


@dataclass
class MergeCounts:
    """What :func:`merge` did. ``unchanged`` current rows matched the ledger exactly."""

    households_created: int = 0
    households_updated: int = 0
    inserted: int = 0
    updated: int = 0
    moved: int = 0
    moved_out: int = 0
    history: int = 0
    unchanged: int = 0

    @property
    def changed(self) -> int:
        return (self.households_created + self.households_updated + self.inserted + self.updated + self.moved
                + self.moved_out + self.history)


_SAME = """p.moved_out IS NULL AND p.id_number_hash = s.id_hash"""
_CHANGED = """(p.name, p.gender, p.relation, p.kind, p.phone_hash, p.tags, p.isolation_from, p.isolation_to,
               p.moved_in) IS DISTINCT FROM
              (s.name, s.gender, s.relation, s.kind, s.phone_hash, s.tags, s.isolation_from, s.isolation_to,
               coalesce(s.moved_in, p.moved_in))"""
_INSERT = """INSERT INTO persons (household_id, name, gender, relation, kind, id_number_sealed, id_number_hash,
                     id_number_masked, phone_sealed, phone_hash, phone_masked, tags, isolation_from, isolation_to,
                     moved_in, moved_out, moved_out_reason, origin, ledger_row)
SELECT s.household_id, s.name, s.gender, s.relation, s.kind, s.id_sealed, s.id_hash, s.id_masked, s.phone_sealed,
       s.phone_hash, s.phone_masked, s.tags, s.isolation_from, s.isolation_to, s.moved_in, s.moved_out,
       CASE WHEN s.moved_out IS NOT NULL THEN 'left' END, :origin,
       CASE WHEN s.moved_out IS NULL THEN s.ledger_row END
FROM stage_persons s"""


def merge(session: Session, origin: str, *, as_of: date, area: str = "buildings") -> MergeCounts:
    """Write the staged (placed, accepted) rows. A person is known by the keyed hash of their ID number.

    * missing households (building, unit, room) are created; a household's floor follows the ledger;
    * a current person found in another household is *moved*: that row closed on the new row's move-in date
      (else ``as_of``) with reason 'moved', and a new row opened here;
    * a row with a move-out date closes the person's current row here ('left'), or is kept as history;
    * current persons of the ledger's ``area`` absent from it are closed on ``as_of`` ('left'): ``area``
      'buildings' = the buildings the ledger names, 'communities' = every building of their communities;
    * others are inserted in the ledger's line order (their ids follow it), or updated where a field differs
      (nothing is written for an unchanged row);
    * every household touched gets its residents count, head (name; masked ID and mobile) and tags (the union of
      its residents' household-level tags) recomputed from its current persons, and its version raised once;
    * every current row written from the ledger keeps the row's fingerprint (``ledger_row``); a row whose fields
      are unchanged but whose fingerprint is new (other spelling, another mapping) gets it without counting as
      updated. Unchanged rows staged by fingerprint (``same``) are not looked at again.
    """
    session.execute(text("SELECT set_config('gridgov.household_versions', 'by writer', true)"))
    counts = _merge(session, origin, as_of, area)
    # not in a finally: after a failed statement the transaction is aborted (another statement would hide the
    # error), and its rollback (or the savepoint's) undoes this transaction-local setting anyway
    session.execute(text("SELECT set_config('gridgov.household_versions', '', true)"))
    return counts


def _merge(session: Session, origin: str, as_of: date, area: str) -> MergeCounts:
    c = MergeCounts()
    run = lambda sql, **p: session.execute(text(sql), {"as_of": as_of, "origin": origin, **p}).rowcount  # noqa: E731
    c.households_created = run("""
        INSERT INTO households (building_id, unit, floor, room, residents)
        SELECT DISTINCT ON (building_id, unit, room) building_id, unit, floor, room, 0
        FROM stage_persons WHERE household_id IS NULL ORDER BY building_id, unit, room, line
        ON CONFLICT (building_id, unit, room) DO NOTHING""")
    run("""UPDATE stage_persons s SET household_id = h.id FROM households h
           WHERE s.household_id IS NULL AND h.building_id = s.building_id AND h.unit = s.unit AND h.room = s.room""")
    _raw(session, "ANALYZE stage_persons")
    c.households_updated = run("""
        UPDATE households h SET floor = f.floor
        FROM (SELECT DISTINCT ON (household_id) household_id, floor FROM stage_persons
              WHERE floor IS NOT NULL AND household_id IN (SELECT household_id FROM stage_persons WHERE NOT same)
              ORDER BY household_id, line) f
        WHERE h.id = f.household_id AND h.floor IS DISTINCT FROM f.floor""")
    c.moved = run(f"""
        WITH closed AS (
            UPDATE persons p SET moved_out = greatest(coalesce(s.moved_in, :as_of), p.moved_in),
                                 moved_out_reason = 'moved', updated_at = now()
            FROM stage_persons s
            WHERE {_SAME} AND NOT s.same AND s.moved_out IS NULL AND p.household_id <> s.household_id
            RETURNING p.household_id)
        INSERT INTO stage_touched SELECT household_id FROM closed""")
    c.moved_out = run(f"""
        WITH closed AS (
            UPDATE persons p SET moved_out = greatest(s.moved_out, p.moved_in), moved_out_reason = 'left',
                                 updated_at = now()
            FROM stage_persons s
            WHERE {_SAME} AND NOT s.same AND s.moved_out IS NOT NULL AND p.household_id = s.household_id
            RETURNING p.household_id)
        INSERT INTO stage_touched SELECT household_id FROM closed""")
    area_sql = {"buildings": "h.building_id IN (SELECT building_id FROM stage_persons)",
                "communities": """h.building_id IN (SELECT b.id FROM buildings b WHERE b.community_code IN (
                                      SELECT DISTINCT b2.community_code FROM buildings b2
                                      WHERE b2.id IN (SELECT building_id FROM stage_persons)))"""}[area]
    c.moved_out += run(f"""
        WITH closed AS (
            UPDATE persons p SET moved_out = greatest(CAST(:as_of AS date), p.moved_in), moved_out_reason = 'left',
                                 updated_at = now()
            FROM households h
            WHERE h.id = p.household_id AND p.moved_out IS NULL AND {area_sql}
              AND NOT EXISTS (SELECT 1 FROM stage_persons s WHERE s.id_hash = p.id_number_hash)
              AND NOT EXISTS (SELECT 1 FROM stage_kept k WHERE k.id_hash = p.id_number_hash)
            RETURNING p.household_id)
        INSERT INTO stage_touched SELECT household_id FROM closed""")
    for heads in ("<>", "="):  # demoted heads first: at most one current head per household at any moment
        c.updated += run(f"""
            WITH changed AS (UPDATE persons p SET name = s.name, gender = s.gender, relation = s.relation, kind = s.kind,
                   phone_sealed = CASE WHEN p.phone_hash IS NOT DISTINCT FROM s.phone_hash THEN p.phone_sealed
                                       ELSE s.phone_sealed END,
                   phone_masked = s.phone_masked, phone_hash = s.phone_hash, tags = s.tags,
                   isolation_from = s.isolation_from, isolation_to = s.isolation_to,
                   moved_in = coalesce(s.moved_in, p.moved_in), origin = :origin, updated_at = now(),
                   ledger_row = s.ledger_row
            FROM stage_persons s
            WHERE {_SAME} AND NOT s.same AND s.moved_out IS NULL AND p.household_id = s.household_id
              AND s.relation {heads} 'head' AND {_CHANGED}
            RETURNING p.household_id)
            INSERT INTO stage_touched SELECT household_id FROM changed""")
    run(f"""UPDATE persons p SET ledger_row = s.ledger_row FROM stage_persons s
            WHERE {_SAME} AND NOT s.same AND s.moved_out IS NULL AND p.household_id = s.household_id
              AND p.ledger_row IS DISTINCT FROM s.ledger_row""")
    c.inserted = run(f"""WITH added AS ({_INSERT}
        WHERE s.moved_out IS NULL AND NOT s.same
          AND NOT EXISTS (SELECT 1 FROM persons p WHERE {_SAME} AND p.household_id = s.household_id)
        ORDER BY s.line RETURNING household_id)
        INSERT INTO stage_touched SELECT household_id FROM added""")
    c.history = run(f"""WITH added AS ({_INSERT}
        WHERE s.moved_out IS NOT NULL AND NOT s.same
          AND NOT EXISTS (SELECT 1 FROM persons p WHERE p.id_number_hash = s.id_hash
                          AND p.household_id = s.household_id AND p.moved_out >= s.moved_out)
        ORDER BY s.line RETURNING household_id)
        INSERT INTO stage_touched SELECT household_id FROM added""")
    if c.inserted + c.history > 1000:  # the statistics of the transaction's start would plan a million rows as none
        _raw(session, "ANALYZE persons")
    c.unchanged = session.execute(text("SELECT count(*) FROM stage_persons WHERE moved_out IS NULL")).scalar_one() \
        - c.inserted - c.updated
    c.households_updated += _refresh(session, _TOUCHED_IDS, {}, bump=True)
    return c


_TOUCHED_IDS = "SELECT DISTINCT household_id AS id FROM stage_touched"


def refresh_households(session: Session, household_ids: Sequence[int]) -> int:
    """Recompute residents, head (name; masked ID and mobile) and tags of these households from their current
    persons (after an edit of the ledger); rows changed."""
    return _refresh(session, "SELECT unnest(CAST(:ids AS bigint[])) AS id", {"ids": list(household_ids)})


def _refresh(session: Session, ids_sql: str, params: dict[str, Any], *, bump: bool = False) -> int:
    """Recompute the ledger-derived columns of the households ``ids_sql`` selects; how many changed. ``bump``
    (the merge, whose statements leave the versions to it: every write records its households in
    ``stage_touched``, an unchanged re-import touches none): also raise every one's version, changed or not;
    else only changed rows are written (their version follows by trigger)."""
    return session.execute(text("WITH ids AS (" + ids_sql + ")," + """
        current AS (SELECT p.household_id, p.relation, p.name, p.id_number_masked, p.phone_masked, p.tags
                    FROM persons p JOIN ids ON ids.id = p.household_id WHERE p.moved_out IS NULL),
        counts AS (
            SELECT household_id AS id, least(50, count(*)) AS residents,
                   max(name) FILTER (WHERE relation = 'head') AS head_name,
                   max(id_number_masked) FILTER (WHERE relation = 'head'
                                                AND id_number_masked ~ '^[0-9]{6}[*]{8}[0-9]{3}[0-9X]$') AS head_id,
                   max(phone_masked) FILTER (WHERE relation = 'head' AND phone_masked ~ '^1[0-9]{2}[*]{4}[0-9]{4}$')
                       AS head_phone
            FROM current GROUP BY household_id),
        tags AS (
            SELECT household_id AS id, array_agg(DISTINCT t ORDER BY t) AS tags
            FROM current, unnest(current.tags) t WHERE t = ANY(CAST(:tags AS text[])) GROUP BY household_id),
        derived AS (
            SELECT d.*, (o.residents, o.head_name, o.head_id_number, o.head_phone, o.tags)
                        IS DISTINCT FROM (d.residents, d.head_name, d.head_id, d.head_phone, d.tags) AS changed
            FROM (SELECT ids.id, coalesce(c.residents, 0) AS residents, c.head_name, c.head_id, c.head_phone,
                         coalesce(t.tags, '{}') AS tags
                  FROM ids LEFT JOIN counts c ON c.id = ids.id LEFT JOIN tags t ON t.id = ids.id) d
            JOIN households o ON o.id = d.id),
        written AS (
            UPDATE households h SET residents = d.residents, head_name = d.head_name, head_id_number = d.head_id,
                                    head_phone = d.head_phone, tags = d.tags""" + (
        ", version = h.version + 1 FROM derived d WHERE h.id = d.id" if bump else
        " FROM derived d WHERE h.id = d.id AND d.changed") + """
            RETURNING d.changed)
        SELECT count(*) FILTER (WHERE changed) FROM written"""),
        {**params, "tags": list(HOUSEHOLD_TAGS)}).scalar_one()


# -- lookups ------------------------------------------------------------------------------------------------------


def find_by_id_number(session: Session, keys: PersonalKeys, id_number: str, *,
                      current_only: bool = False) -> list[dict]:
    """Rows of the person with ``id_number`` (exact, by keyed hash; every key of the file, so a lookup during a
    rotation still finds them), newest first: id, household_id, name, relation, masked ID, moved_in, moved_out."""
    rows = session.execute(text("""
        SELECT id, household_id, name, relation, kind, id_number_masked, moved_in, moved_out, moved_out_reason
        FROM persons WHERE id_number_hash = ANY(:hashes) AND (NOT :current OR moved_out IS NULL)
        ORDER BY moved_out DESC NULLS FIRST, id DESC"""),
        {"hashes": keys.digests(ID_FIELD, id_number), "current": current_only}).mappings().all()
    return [dict(r) for r in rows]


def find_by_phone(session: Session, keys: PersonalKeys, phone: str) -> list[dict]:
    """Current persons with this (normalised) phone number: id, household_id, name, relation."""
    rows = session.execute(text("""
        SELECT id, household_id, name, relation FROM persons
        WHERE phone_hash = ANY(:hashes) AND moved_out IS NULL ORDER BY id"""),
        {"hashes": keys.digests(PHONE_FIELD, phone)}).mappings().all()
    return [dict(r) for r in rows]


def open_heads(session: Session, rows: Sequence[Mapping[str, Any]],
               keys: Callable[[], PersonalKeys] | None) -> list[dict[str, Any]]:
    """``rows`` (with ``id``, ``head_name``, ``head_id_number``, ``head_phone`` of households) where each ledger
    household (a current head in ``persons``) gets its head's values opened with ``keys()``; the other rows keep
    their own. KeyUnavailable when some row needs the keys and ``keys`` is None or cannot open it."""
    heads = session.execute(text("""
        SELECT household_id, name, id_number_sealed, phone_sealed FROM persons
        WHERE household_id = ANY(:ids) AND relation = 'head' AND moved_out IS NULL"""),
        {"ids": [int(r["id"]) for r in rows]}).all()
    if not heads:
        return [dict(r) for r in rows]
    if keys is None:
        raise KeyUnavailable("these households' ID and phone numbers are sealed and no personal-data key is "
                             "configured (GRIDGOV_PERSONAL_KEY_FILE)")
    opened = keys()
    by_id = {h.household_id: {
        "head_name": h.name, "head_id_number": opened.open(ID_FIELD, h.id_number_sealed),
        "head_phone": None if h.phone_sealed is None else opened.open(PHONE_FIELD, h.phone_sealed)} for h in heads}
    return [{**r, **by_id.get(r["id"], {})} for r in rows]


def reseal(session: Session, keys: PersonalKeys, batch: int = 50_000) -> int:
    """Seal and hash every stored ID and phone number again under ``keys``' current key (they may be sealed
    under any key of ``keys``). Takes the ledger lock; rows rewritten."""
    _raw(session, "SELECT pg_advisory_xact_lock(%d)" % LOCK)
    _raw(session, """CREATE TEMP TABLE IF NOT EXISTS stage_reseal (id bigint PRIMARY KEY, id_sealed bytea,
                     id_hash bytea, phone_sealed bytea, phone_hash bytea) ON COMMIT DROP""")
    _raw(session, "TRUNCATE stage_reseal")
    cursor = _cursor(session)
    done, last = 0, 0
    while True:
        cursor.execute("SELECT id, id_number_sealed, phone_sealed FROM persons WHERE id > %s ORDER BY id LIMIT %s",
                       (last, batch))
        rows = cursor.fetchall()
        if not rows:
            break
        out = []
        for pid, id_sealed, phone_sealed in rows:
            number = keys.open(ID_FIELD, id_sealed)
            phone = keys.open(PHONE_FIELD, phone_sealed) if phone_sealed is not None else None
            out.append((pid, keys.seal(ID_FIELD, number), keys.digest(ID_FIELD, number),
                        None if phone is None else keys.seal(PHONE_FIELD, phone),
                        None if phone is None else keys.digest(PHONE_FIELD, phone)))
        _copy_rows(session, "stage_reseal", ("id", "id_sealed", "id_hash", "phone_sealed", "phone_hash"), out)
        done += len(rows)
        last = rows[-1][0]
    _raw(session, """UPDATE persons p SET id_number_sealed = r.id_sealed, id_number_hash = r.id_hash,
                            phone_sealed = r.phone_sealed, phone_hash = r.phone_hash
                     FROM stage_reseal r WHERE r.id = p.id""")
    return done
