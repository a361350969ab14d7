"""A federation of cities (issue 18 §3, docs/decisions/0026-federation.md): each city one deployment, a province
that reads their roll-ups through ``postgres_fdw``.

**City side** (each deployment, migration 0029): the city code (:func:`city_code`, :func:`set_city_code`) on the
hot tables :data:`HOT_TABLES`, and the roll-up views :data:`VIEWS` — counts and public geometry, never a name, ID
or phone number, address, reporter, assignee or free text. :func:`grant_federation_role` makes the role
:data:`FEDERATION_ROLE` (no login) that may SELECT those views and nothing else, and the login role
:data:`READER_ROLE` (a member of it) a province's user mapping logs in as.

**Province side** (a database of its own with PostGIS; :func:`prepare_province`, then :func:`attach_city` per
city): schema ``federation`` holds one table per roll-up, ``PARTITION BY LIST (city_code)``, whose partitions are
foreign tables of the cities' views (a server ``city_<code>`` per city with ``extensions 'postgis'``; costs from
local statistics, :func:`server_options`). :func:`rollup` reads them: a one-city query reads one partition
(pruning), and each city's aggregate, its ``&&`` / ``ST_DWithin`` filter and its period filter run in the city
(the ``Remote SQL`` of ``EXPLAIN VERBOSE``; :func:`explain_rollup`). Not pushed in PostgreSQL 15: ``EXISTS`` semi-joins between two
foreign tables and ``ORDER BY … LIMIT`` across partitions (each city sends its rows, the province sorts).

Creating ``postgres_fdw`` and the servers needs a superuser in the province (the extension is not trusted);
creating the roles needs CREATEROLE in the city. Both run once, by the operator (``gridgov federation …``).

Geometry: EPSG:4326 (lon, lat); distances in metres on the spheroid (geography).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from spatial.errors import GridgovError, InvalidInput, NotFound
from spatial.store.case_figures import period
from spatial.store.scope import prefix_bounds, prefix_range

HOT_TABLES = ("grids", "buildings", "households", "persons", "cases", "campaign_visits")
"""The tables carrying ``city_code`` (migration 0029 freezes the same list)."""
VIEWS = ("federation_deployment", "federation_grids", "federation_cases", "federation_risk_zones")
FEDERATION_ROLE = "gridgov_federation"
READER_ROLE = "gridgov_province"
UNSTATED = "0000"
"""The city code of a deployment whose city was never stated (no city has it)."""
SCHEMA = "federation"
CITY_CODE = re.compile(r"^[1-9][0-9]{3}$")
BY = {"city": None, "district": "left(community_code, 6)", "community": "community_code"}
"""Group keys of a roll-up: SQL over the provincial tables (always grouped within a city too)."""

# the province's tables: name -> (columns, the city's view they read); columns as the city's views give them
PROVINCE_TABLES: dict[str, tuple[str, str]] = {
    "grids": ("""city_code char(4) NOT NULL, grid_code varchar(14) NOT NULL, community_code varchar(12) NOT NULL,
        name text, kind text, boundary geometry(MultiPolygon, 4326), households bigint, buildings bigint,
        persons bigint, targeted bigint, screened bigint""", "federation_grids"),
    "cases": ("""city_code char(4) NOT NULL, case_id bigint NOT NULL, grid_code varchar(14),
        community_code varchar(12), category_code text, department text, state text, priority text,
        location geometry(Point, 4326), reported_at timestamptz, closed_at timestamptz, deadline timestamptz,
        due_at timestamptz, open boolean, late boolean, redos smallint, extensions smallint,
        satisfaction smallint""", "federation_cases"),
    "risk_zones": ("""city_code char(4) NOT NULL, zone_id integer NOT NULL, version integer NOT NULL,
        target_kind text, community_code varchar(12), scope_code varchar(12), scheme text, level text,
        severity smallint, boundary geometry(MultiPolygon, 4326), valid_from timestamptz,
        valid_to timestamptz""", "federation_risk_zones"),
}


def check_city_code(code: str) -> str:
    """``code`` if it is a city's 4-digit prefix (province 2 + city 2, GB/T 2260), else InvalidInput."""
    if not isinstance(code, str) or not CITY_CODE.match(code):
        raise InvalidInput(f"a city code is 4 digits (province 2 + city 2), got {str(code)[:12]!r}",
                           code="federation.city_code", got=str(code)[:12])
    return code


def _literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


# -- city side ------------------------------------------------------------------------------------------------------
def city_code(conn: Connection) -> str:
    """The deployment's city code (:data:`UNSTATED` if never stated)."""
    return conn.scalar(text("SELECT city_code FROM deployment"))


def set_city_code(conn: Connection, code: str) -> int:
    """State the deployment's city: the ``deployment`` row and the default of ``city_code`` on every hot table (a
    catalogue change), then relabel the rows that carry another code (an UPDATE of those rows: cheap before data
    is loaded, a full pass of the hot tables afterwards; their triggers fire — household versions are bumped —
    except the append-only refusal of ``campaign_visits``, set aside for the relabelling). As the schema owner.
    Returns the rows relabelled."""
    check_city_code(code)
    conn.execute(text("UPDATE deployment SET city_code = :c, stated_at = now()"), {"c": code})
    changed = 0
    for table in HOT_TABLES:
        conn.execute(text(f"ALTER TABLE {table} ALTER COLUMN city_code SET DEFAULT {_literal(code)}"))
        if not conn.scalar(text(f"SELECT EXISTS (SELECT FROM {table} WHERE city_code <> :c)"), {"c": code}):
            continue
        # records of fact (campaign_visits) refuse updates by trigger: relabelling is no change of fact, so their
        # refusal is set aside for this one statement of this transaction
        refusals = list(conn.scalars(text("""
            SELECT t.tgname FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
            WHERE t.tgrelid = CAST(:t AS regclass) AND p.proname = 'refuse_change' AND t.tgenabled <> 'D'
              AND t.tgtype & 16 <> 0"""), {"t": table}))  # 16: fires on UPDATE
        for name in refusals:
            conn.execute(text(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"'))
        changed += conn.execute(text(f"UPDATE {table} SET city_code = :c WHERE city_code <> :c"), {"c": code}).rowcount
        for name in refusals:
            conn.execute(text(f'ALTER TABLE {table} ENABLE TRIGGER "{name}"'))
    return changed


def grant_federation_role(conn: Connection, reader_password: str | None = None) -> None:
    """In a city database, as a role with CREATEROLE: create :data:`FEDERATION_ROLE` (NOLOGIN) and
    :data:`READER_ROLE` (LOGIN, member of it; ``reader_password`` sets its password) when missing, and grant
    the federation role SELECT on the roll-up views (and nothing else). Roles are per cluster, grants per
    database: run it in each city database. Idempotent."""
    for role, options in ((FEDERATION_ROLE, "NOLOGIN"), (READER_ROLE, "LOGIN")):
        if not conn.scalar(text("SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = :r)"), {"r": role}):
            conn.execute(text(f"CREATE ROLE {role} {options}"))
    if reader_password:
        conn.execute(text(f"ALTER ROLE {READER_ROLE} PASSWORD {_literal(reader_password)}"))
    # JIT compiling a roll-up's expressions costs more than it saves at a city's size (decision 0026)
    conn.execute(text(f"ALTER ROLE {READER_ROLE} SET jit = off"))
    if not conn.scalar(text("SELECT pg_has_role(:u, :r, 'MEMBER')"), {"u": READER_ROLE, "r": FEDERATION_ROLE}):
        conn.execute(text(f"GRANT {FEDERATION_ROLE} TO {READER_ROLE}"))
    conn.execute(text(f"GRANT SELECT ON {', '.join(VIEWS)} TO {FEDERATION_ROLE}"))


# -- province side --------------------------------------------------------------------------------------------------
def prepare_province(conn: Connection) -> None:
    """In the province's database, as a superuser: the extensions (PostGIS, postgres_fdw), schema ``federation``
    and its partitioned tables (:data:`PROVINCE_TABLES`). Idempotent."""
    conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
    conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgres_fdw"))
    conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
    conn.execute(text(f"""CREATE TABLE IF NOT EXISTS {SCHEMA}.cities (
        city_code char(4) PRIMARY KEY, server name NOT NULL, attached_at timestamptz NOT NULL DEFAULT now())"""))
    for name, (columns, _view) in PROVINCE_TABLES.items():
        conn.execute(text(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.{name} ({columns}) PARTITION BY LIST (city_code)"))


def server_options(url: str) -> tuple[dict[str, str], dict[str, str]]:
    """(server options, user mapping options) for the city database of ``url`` (a libpq or SQLAlchemy URL of
    the city's :data:`READER_ROLE`; the host may be a Unix socket folder, given as ``?host=/path``).

    ``use_remote_estimate`` is off: measured on PostgreSQL 15 (tests/test_federation.py), the city's estimate of a
    grouped query over the roll-up views made the planner fetch the rows and aggregate in the province whenever
    a filter was added; with the partitions' local statistics (:func:`analyze_city`) each city aggregates its
    own rows. ``fdw_tuple_cost`` 1.0 (default 0.01): a row fetched from another city costs as much as reading a page, so
    that the planner prefers sending the aggregate even for a small city. ``async_capable``: the cities'
    partitions of one statement run at the same time (an Async Foreign Scan under the Append). ``fetch_size``
    10,000: a statement that does fetch rows (a per-case list) fetches them in few round trips."""
    parsed = make_url(url.replace("postgresql://", "postgresql+psycopg://", 1) if url.startswith("postgresql://")
                      else url)
    if not parsed.database:
        raise InvalidInput("the city's URL names no database", code="federation.url")
    host = parsed.query.get("host") or parsed.host or "localhost"
    port = parsed.query.get("port") or parsed.port or 5432
    server = {"host": str(host), "port": str(port), "dbname": parsed.database, "extensions": "postgis",
              "use_remote_estimate": "false", "fdw_tuple_cost": "1.0",
              "fetch_size": "10000", "async_capable": "true"}
    mapping = {"user": parsed.username or READER_ROLE}
    if parsed.password:
        mapping["password"] = parsed.password
    else:
        mapping["password_required"] = "false"  # a socket the city's server trusts (only a superuser may say so)
    return server, mapping


def attach_city(conn: Connection, city: str, url: str) -> None:
    """In the province's database, as a superuser: a server ``city_<city>`` for the city database of ``url``
    (:func:`server_options`), a user mapping for every province role (``FOR PUBLIC``: who may read the
    provincial tables is what the province grants on schema ``federation``), and the city's partition of each
    provincial table (a foreign table of its view). The city must say it is ``city`` (its
    ``federation_deployment``), else nothing stays attached. Attaching again replaces the city's server."""
    check_city_code(city)
    prepare_province(conn)
    server = f"city_{city}"
    detach_city(conn, city)
    options, mapping = server_options(url)
    conn.execute(text(f"CREATE SERVER {server} FOREIGN DATA WRAPPER postgres_fdw OPTIONS ("
                      + ", ".join(f"{k} {_literal(v)}" for k, v in options.items()) + ")"))
    conn.execute(text(f"CREATE USER MAPPING FOR PUBLIC SERVER {server} OPTIONS ("
                      + ", ".join(f"{k} {_literal(v)}" for k, v in mapping.items()) + ")"))
    conn.execute(text(f"CREATE FOREIGN TABLE {SCHEMA}.deployment_{city} (city_code char(4)) SERVER {server} "
                      "OPTIONS (schema_name 'public', table_name 'federation_deployment')"))
    stated = conn.scalar(text(f"SELECT city_code FROM {SCHEMA}.deployment_{city}"))
    if stated != city:
        raise GridgovError(f"the database at that URL serves city {stated}, not {city}",
                           code="federation.city_mismatch", city=city, stated=stated)
    for name, (_columns, view) in PROVINCE_TABLES.items():
        conn.execute(text(f"CREATE FOREIGN TABLE {SCHEMA}.{name}_{city} PARTITION OF {SCHEMA}.{name} "
                          f"FOR VALUES IN ({_literal(city)}) SERVER {server} "
                          f"OPTIONS (schema_name 'public', table_name {_literal(view)})"))
    conn.execute(text(f"INSERT INTO {SCHEMA}.cities (city_code, server) VALUES (:c, :s)"), {"c": city, "s": server})
    analyze_city(conn, city)


def analyze_city(conn: Connection, city: str) -> None:
    """Local statistics of the city's partitions (ANALYZE samples each view through the server: for the grids'
    view that computes every grid's counts once). The planner costs pushdown with them (see
    :func:`server_options`); run again when a city has grown a lot."""
    for name in PROVINCE_TABLES:
        conn.execute(text(f"ANALYZE {SCHEMA}.{name}_{check_city_code(city)}"))


def detach_city(conn: Connection, city: str) -> bool:
    """Drop the city's partitions, user mapping and server from the province; False if it was not attached."""
    check_city_code(city)
    server = f"city_{city}"
    if not conn.scalar(text("SELECT EXISTS (SELECT FROM pg_foreign_server WHERE srvname = :s)"), {"s": server}):
        return False
    conn.execute(text(f"DROP SERVER {server} CASCADE"))  # its user mappings and foreign tables
    conn.execute(text(f"DELETE FROM {SCHEMA}.cities WHERE city_code = :c"), {"c": city})
    return True


def attached_cities(conn: Connection) -> list[str]:
    return list(conn.scalars(text(f"SELECT city_code FROM {SCHEMA}.cities ORDER BY city_code")))


# -- roll-ups -------------------------------------------------------------------------------------------------------
@dataclass
class RollupRow:
    """The figures of one group of a city (``key`` None: the whole city when ``by='city'``, or zones drawn over a
    larger area than a community). Rates are fractions 0–1 (4 places), None when the denominator is 0."""

    city_code: str
    key: str | None
    grids: int = 0
    buildings: int = 0
    households: int = 0
    persons: int = 0
    targeted: int = 0
    screened: int = 0
    open_cases: int = 0
    overdue_cases: int = 0
    due: int = 0
    closed: int = 0
    closed_on_time: int = 0
    zones: dict[str, int] = field(default_factory=dict)
    """Risk zones in force at ``at`` per ``scheme:level``."""

    @property
    def coverage(self) -> float | None:
        return round(self.screened / self.targeted, 4) if self.targeted else None

    @property
    def closure_rate(self) -> float | None:
        """结案率 = closed / due (:mod:`spatial.store.case_figures`)."""
        return round(self.closed / self.due, 4) if self.due else None

    @property
    def on_time_rate(self) -> float | None:
        return round(self.closed_on_time / self.due, 4) if self.due else None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "coverage": self.coverage, "closure_rate": self.closure_rate,
                "on_time_rate": self.on_time_rate}


@dataclass(frozen=True)
class Near:
    """Within ``metres`` (on the spheroid) of the point (``lon``, ``lat``), EPSG:4326."""

    lon: float
    lat: float
    metres: float

    def __post_init__(self) -> None:
        if not (-180 <= self.lon <= 180 and -90 < self.lat < 90 and 0 < self.metres <= 100_000):
            raise InvalidInput("near needs lon -180..180, lat -90..90 and 0 < metres <= 100000",
                               code="federation.near")

    def params(self) -> dict[str, float]:
        """The point and a box holding every point within ``metres`` (1° of latitude ≥ 110.5 km everywhere)."""
        from math import cos, radians

        dlat = self.metres / 110_000
        dlon = min(180.0, self.metres / (110_000 * max(cos(radians(self.lat)), 1e-6)))
        return {"lon": self.lon, "lat": self.lat, "m": self.metres, "x0": self.lon - dlon, "y0": self.lat - dlat,
                "x1": self.lon + dlon, "y1": self.lat + dlat}


def _near_sql(column: str) -> str:
    return (f"{column} && ST_MakeEnvelope(:x0, :y0, :x1, :y1, 4326) AND ST_DWithin({column}::geography, "
            "ST_SetSRID(ST_MakePoint(:lon, :lat), 4326)::geography, :m)")


def rollup_statements(*, by: str = "city", city: str | None = None, division: str | None = None,
                      near: Near | None = None) -> dict[str, str]:
    """The provincial statements of a roll-up (``grids``, ``cases``, ``zones``), each grouped by city and key.
    Parameters: ``:city``, ``:prefix_from``/``:prefix_to`` (:func:`~spatial.store.scope.prefix_bounds`), ``:at``,
    ``:start``, ``:end`` and the point's (:meth:`Near.params`)."""
    if by not in BY:
        raise InvalidInput(f"by must be one of {', '.join(BY)}", code="federation.by", field="by")
    key = BY[by] or "NULL::text"
    group = "city_code" + (f", {BY[by]}" if BY[by] else "")

    def where(geometry: str, community: str = "community_code") -> str:
        parts = ["city_code = CAST(:city AS char(4))" if city else "TRUE"]
        if division:
            parts.append(prefix_range(community))
        if near:
            parts.append(_near_sql(geometry))
        return " AND ".join(parts)

    return {
        "grids": f"""SELECT city_code, {key} AS key, count(*) AS grids, sum(buildings) AS buildings,
                sum(households) AS households, sum(persons) AS persons, sum(targeted) AS targeted,
                sum(screened) AS screened
            FROM {SCHEMA}.grids WHERE {where('boundary')} GROUP BY {group}""",
        "cases": f"""SELECT city_code, {key} AS key, count(*) FILTER (WHERE open) AS open_cases,
                count(*) FILTER (WHERE open AND deadline < :at) AS overdue_cases,
                count(*) FILTER (WHERE due_at >= :start AND due_at < :end) AS due,
                count(*) FILTER (WHERE due_at >= :start AND due_at < :end AND state = 'closed') AS closed,
                count(*) FILTER (WHERE due_at >= :start AND due_at < :end AND state = 'closed' AND NOT late)
                    AS closed_on_time
            FROM {SCHEMA}.cases WHERE {where('location')} GROUP BY {group}""",
        "zones": f"""SELECT city_code, {key} AS key, scheme, level, count(*) AS zones
            FROM {SCHEMA}.risk_zones
            WHERE {where('boundary', 'scope_code')} AND valid_from <= :at AND (valid_to IS NULL OR valid_to > :at)
            GROUP BY {group}, scheme, level""",
    }


def _params(city: str | None, division: str | None, near: Near | None, at: datetime, date_from: date,
            date_to: date) -> dict[str, Any]:
    if city:
        check_city_code(city)
    if division is not None and not re.fullmatch(r"[0-9]{4,12}", division):
        raise InvalidInput("division is a code prefix of 4 to 12 digits", code="federation.division")
    start, end = period(date_from, date_to)
    return {"city": city, **prefix_bounds(division or ""), "at": at, "start": start, "end": end,
            **(near.params() if near else {})}


def _pushdown(conn: Connection) -> None:
    """Each city aggregates its own partition (partition-wise aggregation; the grouping includes the city)."""
    conn.execute(text("SET LOCAL enable_partitionwise_aggregate = on"))


def rollup(conn: Connection, *, by: str = "city", at: datetime, date_from: date, date_to: date,
           city: str | None = None, division: str | None = None, near: Near | None = None) -> list[RollupRow]:
    """The province's figures per city (and per district or community with ``by``), optionally of one ``city``,
    of the communities whose code starts with ``division``, or near a point (grids whose boundary, cases whose
    place, zones whose boundary lies within the distance): households, buildings, current persons, the open
    campaigns' coverage (targeted/screened), open and overdue cases at ``at`` (timezone-aware), cases due
    between ``date_from`` and ``date_to`` (inclusive Asia/Shanghai days, as :mod:`spatial.store.case_figures`
    counts them) and closed, the risk zones in force at ``at`` per level. Ordered by city then key (None
    first). Runs inside the caller's transaction."""
    params = _params(city, division, near, at, date_from, date_to)
    _pushdown(conn)
    rows: dict[tuple[str, str | None], RollupRow] = {}
    statements = rollup_statements(by=by, city=city, division=division, near=near)
    for name in ("grids", "cases"):
        for r in conn.execute(text(statements[name]), params):
            row = rows.setdefault((r.city_code, r.key), RollupRow(r.city_code, r.key))
            for column, value in r._mapping.items():
                if column not in ("city_code", "key"):
                    setattr(row, column, int(value or 0))
    for r in conn.execute(text(statements["zones"]), params):
        row = rows.setdefault((r.city_code, r.key), RollupRow(r.city_code, r.key))
        row.zones[f"{r.scheme}:{r.level}"] = int(r.zones)
    return [rows[k] for k in sorted(rows, key=lambda k: (k[0], k[1] or ""))]


def explain_rollup(conn: Connection, statement: str, *, at: datetime, date_from: date, date_to: date,
                   city: str | None = None, division: str | None = None, near: Near | None = None) -> str:
    """``EXPLAIN (VERBOSE, COSTS OFF)`` of one of :func:`rollup_statements` with the roll-up's parameters: the
    ``Remote SQL`` lines say what each city runs."""
    params = _params(city, division, near, at, date_from, date_to)
    _pushdown(conn)
    return "\n".join(conn.scalars(text("EXPLAIN (VERBOSE, COSTS OFF) " + statement), params))


def require_attached(conn: Connection) -> list[str]:
    """The attached cities; NotFound when the province has none (or was never prepared)."""
    if not conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": f"{SCHEMA}.cities"}) \
            or not (cities := attached_cities(conn)):
        raise NotFound("no city is attached to this province (gridgov federation attach)",
                       code="federation.no_city")
    return cities
