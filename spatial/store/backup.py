"""Backups of a whole gridgov database, and their restore: ``pg_dump`` custom format, ``pg_restore``.

The binaries are those of :func:`spatial.store.cluster.postgres_bindir` (the server's own major version). The
database is given as a SQLAlchemy/libpq URL (the embedded cluster's, over its Unix socket, or
``GRIDGOV_DATABASE_URL``); the password, if any, is passed to the tools in ``PGPASSWORD``, never on a command
line.

* :func:`backup_database` writes one file: schema, data, sequences' values and grants, in one consistent snapshot
  (the service may keep running). Owners are not kept: a restore makes the restoring user the owner. The file
  (and its partial predecessor) is created mode 0600: it holds personal data. Given a ``secret`` it is encrypted
  as it is written (:mod:`spatial.store.sealed`: AES-256-GCM in 1 MiB chunks, never the whole dump in memory).
* :func:`restore_database` first reads the whole file (a missing, truncated or corrupt file is
  :class:`InvalidInput` and changes nothing; an encrypted one is decrypted and authenticated in full first, into
  a 0600 file in a private temporary folder removed afterwards, so a wrong key or a changed file also changes
  nothing), refuses a database that already holds tables or extensions
  (:class:`Conflict`) unless ``force`` (then it restores into a new side database and, once that is complete,
  drops the old one and gives the new one its name), creates the roles that the file grants
  privileges to and the server lacks (roles are cluster-wide, so they are not in a dump; e.g. ``gridgov_app``,
  created ``NOLOGIN``), restores in a single transaction (all or nothing), makes the service's role usable
  again (:func:`spatial.store.privileges.grant_app_role`: the restoring user's membership is not in a dump
  either), lays it out as gridgov's own databases are when a superuser restores where ``gridgov_owner`` exists
  (:func:`_lay_out`), and runs ``ANALYZE``.
* :func:`table_fingerprints` and :func:`sequence_values` describe a database's content, to compare two of them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from sqlalchemy import text
from sqlalchemy.engine import make_url

from spatial.errors import Conflict, DatabaseUnavailable, InvalidInput
from spatial.store.cluster import postgres_bindir
from spatial.store.engine import make_engine
from spatial.store.privileges import AUDIT_ROLE, OWNER_ROLE, grant_app_role, lay_out_schema
from spatial.store.sealed import Sealer, is_sealed, open_sealed

Progress = Callable[[int, int], None]

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")
_USER_TABLES = """
    SELECT c.oid::regclass::text AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%(system)s) AND n.nspname NOT LIKE 'pg\\_temp%%'
    ORDER BY 1"""
_DUMPED = re.compile(r'dumping contents of table "')
_RESTORED = re.compile(r'processing data for table "')
_GRANTEE = re.compile(r'\bTO\s+("(?:[^"]|"")+"|[A-Za-z_][\w$]*)', re.IGNORECASE)
_FOR_ROLE = re.compile(r'\bFOR\s+ROLE\s+("(?:[^"]|"")+"|[A-Za-z_][\w$]*)', re.IGNORECASE)


@dataclass(frozen=True)
class Summary:
    """What a backup or restore did: tables and rows (exact counts), size of the file in bytes, wall seconds."""

    action: str
    path: Path
    database: str
    tables: int
    rows: int
    bytes: int
    seconds: float
    roles_created: tuple[str, ...] = ()

    def line(self) -> str:
        roles = f"; created roles {', '.join(self.roles_created)} (NOLOGIN)" if self.roles_created else ""
        return (f"{self.action} database {self.database} {'to' if self.action == 'backed up' else 'from'} "
                f"{self.path}: {self.tables} tables, {self.rows:,} rows, {self.bytes:,} bytes, "
                f"{self.seconds:.1f} s{roles}")


# -- connecting ----------------------------------------------------------------------------------------
def _params(url: str, dbname: str | None = None) -> dict[str, str]:
    """libpq connection parameters of a SQLAlchemy URL (``host`` may be a socket folder in the query)."""
    parsed = make_url(url)
    params = {k: (v[-1] if isinstance(v, tuple) else v) for k, v in parsed.query.items()}
    for key, value in (("host", parsed.host), ("port", parsed.port), ("user", parsed.username),
                       ("password", parsed.password), ("dbname", dbname or parsed.database)):
        if value is not None:
            params[key] = str(value)
    return params


def _connect(url: str, dbname: str | None = None) -> psycopg.Connection:
    """An autocommit connection to ``url``'s database (or ``dbname`` on the same server); DatabaseUnavailable
    naming the database if it cannot be reached."""
    params = _params(url, dbname)
    try:
        return psycopg.connect(make_conninfo(**params), autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as exc:
        raise DatabaseUnavailable(f"cannot connect to database {params.get('dbname')}: {str(exc).strip()}") from exc


def _tool(name: str, url: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """Command line and environment of a PostgreSQL client tool on ``url``'s database (password in the env)."""
    params = _params(url)
    env = {**os.environ}
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = password
    return [str(postgres_bindir() / name), "--dbname", make_conninfo(**params), *args], env


def _run_verbose(cmd: list[str], env: dict[str, str], marker: re.Pattern[str], total: int,
                 progress: Progress | None, sink: Callable[[bytes], None] | None = None) -> tuple[int, list[str]]:
    """Run a ``--verbose`` tool, calling ``progress(done, total)`` on every line matching ``marker``, and
    ``sink`` with its standard output piece by piece (if given). Returns the exit code and the lines that report
    errors."""
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if sink else subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=False)
    done, errors = 0, []
    assert process.stderr is not None

    def read_stderr() -> None:
        nonlocal done
        for raw in process.stderr:
            line = raw.decode(errors="replace")
            if marker.search(line):
                done += 1
                if progress:
                    progress(min(done, total), total)
            elif "error" in line.lower() or "fatal" in line.lower() or line.startswith(("DETAIL", "HINT", "LINE")):
                errors.append(line.rstrip())

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    if sink is not None:
        assert process.stdout is not None
        try:
            while piece := process.stdout.read(1 << 20):
                sink(piece)
        except BaseException:  # e.g. the disk is full: stop the tool rather than leave it blocked on the pipe
            process.kill()
            process.wait()
            raise
    code = process.wait()
    reader.join()
    if progress:
        progress(total, total)
    return code, errors


# -- describing a database -----------------------------------------------------------------------------
def user_tables(conn: psycopg.Connection) -> list[str]:
    """Every ordinary or partitioned table outside the system schemas, as qualified names, sorted."""
    return [r[0] for r in conn.execute(_USER_TABLES, {"system": list(SYSTEM_SCHEMAS)})]


def _row_counts(url: str) -> tuple[int, int]:
    """(tables, rows) of the database, counted exactly."""
    with _connect(url) as conn:
        tables = user_tables(conn)
        rows = sum(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(t))).fetchone()[0]
                   for t in tables)
    return len(tables), rows


def table_fingerprints(conn: psycopg.Connection) -> dict[str, tuple[int, str]]:
    """``{table: (rows, md5)}`` of every user table: the md5 of its rows as text, ordered by the primary key
    (else by the whole row), with geometry and geography columns as hex EWKB. Equal fingerprints mean equal
    content."""
    result = {}
    for table in user_tables(conn):
        columns = conn.execute("""
            SELECT a.attname, t.typname FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
            WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum""",
            (table,)).fetchall()
        key = [r[0] for r in conn.execute("""
            SELECT a.attname FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY k(attnum, n) ON true
            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
            WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY k.n""", (table,))]
        values = [sql.SQL("encode(ST_AsEWKB({}), 'hex')").format(sql.Identifier(name))
                  if typ in ("geometry", "geography") else sql.SQL("{}::text").format(sql.Identifier(name))
                  for name, typ in columns]
        row = sql.SQL("json_build_array({})::text").format(sql.SQL(", ").join(values))
        order = sql.SQL(", ").join(map(sql.Identifier, key)) if key else row
        query = sql.SQL("SELECT count(*), coalesce(md5(string_agg({row}, E'\\n' ORDER BY {order})), '') "
                        "FROM {table}").format(row=row, order=order, table=sql.SQL(table))
        result[table] = tuple(conn.execute(query).fetchone())
    return result


def sequence_values(conn: psycopg.Connection) -> dict[str, tuple[int | None, bool]]:
    """``{sequence: (last_value, is_called)}`` of every user sequence."""
    names = [r[0] for r in conn.execute(
        "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'S' AND n.nspname <> ALL(%s) ORDER BY 1", (list(SYSTEM_SCHEMAS),))]
    return {name: tuple(conn.execute(sql.SQL("SELECT last_value, is_called FROM {}").format(sql.SQL(name)))
                        .fetchone()) for name in names}


def _contents(conn: psycopg.Connection) -> tuple[int, list[str]]:
    """(user tables, extensions other than plpgsql) of a database: what makes it non-empty."""
    extensions = [r[0] for r in conn.execute("SELECT extname FROM pg_extension WHERE extname <> 'plpgsql' ORDER BY 1")]
    return len(user_tables(conn)), extensions


# -- backup --------------------------------------------------------------------------------------------
PRIVATE_MODE = 0o600
"""Backups and their temporary files: readable by their owner only (they hold names, ID numbers, phones)."""


def _create_private(path: Path):
    """``path`` opened for binary writing, created anew with mode 0600 whatever the umask."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_MODE)
    os.fchmod(fd, PRIVATE_MODE)
    return os.fdopen(fd, "wb")


def backup_database(url: str, path: Path, *, progress: Progress | None = None, secret: bytes | None = None) -> Summary:
    """Write the database at ``url`` to ``path`` (pg_dump custom format, compressed; replaced if it exists), mode
    0600; encrypted with ``secret`` (a passphrase or a key file's bytes) if given (:mod:`spatial.store.sealed`).

    pg_dump writes to a pipe; the file is written next to ``path`` and renamed when complete, so a failed backup
    never leaves a truncated file under the final name.
    """
    started = time.monotonic()
    path = Path(path)
    tables, rows = _row_counts(url)
    partial = path.with_name(f".{path.name}.partial")
    cmd, env = _tool("pg_dump", url, "--format=custom", "--verbose", "--no-owner")
    try:
        with _create_private(partial) as out:
            sealer = Sealer(out, secret) if secret is not None else None
            code, errors = _run_verbose(cmd, env, _DUMPED, tables, progress, sealer.write if sealer else out.write)
            if sealer is not None and code == 0:
                sealer.close()
        if code != 0:
            raise InvalidInput(f"pg_dump failed ({code}): " + ("; ".join(errors[-5:]) or "no message"))
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)
    return Summary("backed up", path, _params(url).get("dbname", "?"), tables, rows, path.stat().st_size,
                   time.monotonic() - started)


# -- restore -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Archive:
    """What a backup file holds: its table-data entries and the roles its privileges name."""

    path: Path
    tables: int
    roles: tuple[str, ...]


def _unquote(name: str) -> str:
    return name[1:-1].replace('""', '"') if name.startswith('"') else name.lower()


def read_archive(path: Path) -> Archive:
    """Check that ``path`` is a complete, readable pg_dump custom-format file by reading all of it; InvalidInput
    (saying what is wrong) otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"no backup file at {path}")
    pg_restore = str(postgres_bindir() / "pg_restore")
    listing = subprocess.run([pg_restore, "--list", str(path)], check=False, capture_output=True, text=True)
    if listing.returncode != 0:
        raise InvalidInput(f"{path} is not a gridgov backup (pg_dump custom format): {listing.stderr.strip()}")
    entries = [line for line in listing.stdout.splitlines() if line and not line.startswith(";")]
    full = subprocess.run([pg_restore, "--file", os.devnull, str(path)], check=False, capture_output=True, text=True)
    if full.returncode != 0:
        raise InvalidInput(f"{path} is damaged (truncated or corrupt) and cannot be restored: {full.stderr.strip()}")
    acl_entries = [line for line in entries if " ACL " in line or " DEFAULT ACL " in line]
    roles: set[str] = set()
    if acl_entries:
        with tempfile.NamedTemporaryFile("w", suffix=".list") as chosen:
            chosen.write("\n".join(acl_entries) + "\n")
            chosen.flush()
            grants = subprocess.run([pg_restore, "--use-list", chosen.name, "--file", "-", str(path)],
                                    capture_output=True, text=True, check=True).stdout
        for statement in grants.split(";\n"):
            if statement.lstrip().upper().startswith(("GRANT", "ALTER DEFAULT PRIVILEGES")):
                roles.update(_unquote(m) for m in _GRANTEE.findall(statement) + _FOR_ROLE.findall(statement))
    roles.discard("public")
    return Archive(path, sum(" TABLE DATA " in line for line in entries), tuple(sorted(roles)))


def _with_database(url: str, dbname: str) -> str:
    return make_url(url).set(database=dbname).render_as_string(hide_password=False)


def _target(url: str, force: bool) -> str | None:
    """Where to restore: None for ``url``'s own database if it is missing (then created) or empty; with ``force``
    and a non-empty database, the URL of a new side database ``<name>_restoring`` that :func:`_swap` puts in
    its place once the restore is complete (so a failed restore leaves the old database as it was). Conflict if
    the database holds tables or extensions and ``force`` is not given."""
    dbname = _params(url)["dbname"]
    with _maintenance(url) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone():
            with _connect(url) as conn:
                tables, extensions = _contents(conn)
            if not tables and not extensions:
                return None
            if not force:
                raise Conflict(f"database {dbname} is not empty ({tables} tables, extensions "
                               f"{', '.join(extensions) or 'none'}): restore refuses to overwrite it; use --force to "
                               "drop and recreate it", database=dbname, tables=tables)
            side = dbname[:50] + "_restoring"
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(side)))
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(side)))
            return _with_database(url, side)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return None


def _swap(url: str, side_url: str) -> None:
    """Drop ``url``'s database (disconnecting its sessions) and rename the side database to its name."""
    dbname, side = _params(url)["dbname"], _params(side_url)["dbname"]
    with _maintenance(url) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
        admin.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(sql.Identifier(side), sql.Identifier(dbname)))


def _drop(url: str) -> None:
    with _maintenance(url) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(_params(url)["dbname"])))


def _maintenance(url: str) -> psycopg.Connection:
    """A connection to the server's ``postgres`` database (else ``template1``), to create and drop databases."""
    try:
        return _connect(url, "postgres")
    except DatabaseUnavailable:
        return _connect(url, "template1")


def _ensure_roles(url: str, roles: tuple[str, ...]) -> tuple[str, ...]:
    """Create (NOLOGIN) the roles in ``roles`` that the server lacks; returns those created."""
    created = []
    with _connect(url) as conn:
        for role in roles:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone():
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(role)))
                created.append(role)
    return tuple(created)


def _lay_out(conn: psycopg.Connection, audit_owner: str = AUDIT_ROLE) -> bool:
    """A restore made by a superuser on a server where :data:`OWNER_ROLE` exists (the embedded cluster, or one
    set up like it) is laid out as gridgov lays out its own databases: the schema owner's, the audit
    ``audit_owner``'s (:func:`spatial.store.privileges.lay_out_schema`). Otherwise the restoring user keeps
    everything (returns False)."""
    superuser, owner = conn.execute("SELECT rolsuper, EXISTS (SELECT FROM pg_roles WHERE rolname = %s) FROM pg_roles "
                                    "WHERE rolname = current_user", (OWNER_ROLE,)).fetchone()
    if superuser and owner:
        lay_out_schema(conn, OWNER_ROLE, audit_owner)
    return bool(superuser and owner)


@contextmanager
def _plain(path: Path, secret: bytes | None) -> Iterator[Path]:
    """The pg_dump file of the backup at ``path``: itself, or if encrypted its plaintext in a private temporary
    folder (0700, file 0600) for as long as the block runs, decrypted and authenticated in full before it is used.
    InvalidInput for an encrypted file without ``secret``, a wrong secret or a changed file."""
    path = Path(path)
    if not path.is_file() or not is_sealed(path):
        yield path
        return
    if secret is None:
        raise InvalidInput(f"{path} is an encrypted backup: give its key (--key-file, GRIDGOV_BACKUP_KEY_FILE or "
                           "GRIDGOV_BACKUP_PASSPHRASE)")
    folder = Path(tempfile.mkdtemp(prefix="gridgov-restore-"))
    try:
        plain = folder / "backup.dump"
        with _create_private(plain) as out:
            open_sealed(path, secret, out)
        yield plain
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def restore_database(url: str, path: Path, *, force: bool = False, progress: Progress | None = None,
                     secret: bytes | None = None) -> Summary:
    """Restore the backup at ``path`` into the database at ``url`` (created if missing); see the module docstring.
    An encrypted backup needs the ``secret`` it was made with.

    InvalidInput for a missing, damaged or (encrypted) unauthenticated file or a wrong secret, and Conflict for a
    non-empty database without ``force``: in all these cases nothing has been changed. A failure while restoring
    rolls the restore back (one transaction); with ``force`` the old database is replaced only once the new one
    is complete.
    """
    with _plain(path, secret) as plain:
        summary = _restore(url, plain, force=force, progress=progress)
    return Summary(summary.action, Path(path), summary.database, summary.tables, summary.rows,
                   Path(path).stat().st_size, summary.seconds, summary.roles_created)


def _restore(url: str, path: Path, *, force: bool, progress: Progress | None) -> Summary:
    started = time.monotonic()
    archive = read_archive(path)
    side = _target(url, force)
    into = side or url
    try:
        created = _ensure_roles(into, archive.roles)
        cmd, env = _tool("pg_restore", into, "--verbose", "--no-owner", "--single-transaction", "--exit-on-error",
                         str(archive.path))
        code, errors = _run_verbose(cmd, env, _RESTORED, archive.tables, progress)
        if code != 0:
            raise InvalidInput(f"restoring {path} failed and was rolled back ({code}): "
                               + ("; ".join(errors[-5:]) or "no message"))
        with _connect(into) as conn:  # the audit the owner's while it grants, as when migrating
            laid_out = _lay_out(conn, audit_owner=OWNER_ROLE)
        engine = make_engine(into, pool_size=1)
        try:
            with engine.begin() as conn:
                if laid_out:
                    conn.execute(text(f'SET LOCAL ROLE "{OWNER_ROLE}"'))
                grant_app_role(conn)
        finally:
            engine.dispose()
        with _connect(into) as conn:
            if laid_out:
                _lay_out(conn)
            conn.execute("ANALYZE")
    except BaseException:
        if side:
            _drop(side)
        raise
    if side:
        _swap(url, side)
    tables, rows = _row_counts(url)
    return Summary("restored", archive.path, _params(url)["dbname"], tables, rows, archive.path.stat().st_size,
                   time.monotonic() - started, created)
