"""The embedded PostgreSQL cluster that gridgov starts itself when no database URL is configured.

Layout under ``data_dir``: ``pg/`` (the cluster), ``run/`` (its Unix socket; it listens on no TCP port),
``postgres.log``. Local socket connections are trusted; the socket folder is mode 0700, so only its owner (and
root) can connect.

Roles: the cluster's superuser ``gridgov`` only bootstraps — initdb, the roles, creating databases and the
extensions PostGIS and pgRouting (which need a superuser), and the ownership layout of
:func:`spatial.store.privileges.lay_out_schema`. Migrations, the command line and backups connect as the schema
owner :data:`~spatial.store.privileges.OWNER_ROLE` (``gridgov_owner``, no superuser, :meth:`LocalCluster.owner_url`),
the web service as ``gridgov_app``; the audit tables belong to ``gridgov_audit``, which nobody logs in as. A
data folder made by an older gridgov (everything owned by the superuser) is laid out so at its next start.

PostgreSQL refuses to run as root. When gridgov runs as root, the cluster runs as the ``postgres``
system user that Debian's package creates, through ``runuser``; the folders are handed to that user.
Binaries are found in ``/usr/lib/postgresql/<major>/bin`` (Debian's layout), the highest major first.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from contextlib import contextmanager
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from spatial.errors import SetupError
from spatial.store.privileges import APP_ROLE, AUDIT_ROLE, OWNER_ROLE, lay_out_schema

INSTALL_HINT = (
    "install them with: apt-get update && apt-get install -y postgresql-15 postgresql-15-postgis-3 "
    "postgresql-15-pgrouting (or run ./dev.sh setup), or set GRIDGOV_DATABASE_URL to an existing PostGIS server"
)
SERVER_SETTINGS = {
    "listen_addresses": "''",
    "shared_buffers": "'256MB'",
    "work_mem": "'32MB'",
    "maintenance_work_mem": "'256MB'",
    "max_wal_size": "'4GB'",  # a million-row import writes ~2 GB of WAL: fewer forced checkpoints (default 1 GB)
    "max_connections": "100",
    "fsync": "on",
    "log_min_messages": "warning",
    "timezone": "'UTC'",
}


def postgres_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``pg_ctl``; SetupError if none."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[-3]))
    if not candidates:
        raise SetupError("PostgreSQL server binaries were not found (/usr/lib/postgresql/*/bin); " + INSTALL_HINT)
    return Path(candidates[-1]).parent


def check_extensions_installed(bindir: Path) -> None:
    """Raise SetupError naming what is missing if PostGIS or pgRouting is not installed for this server."""
    sharedir = subprocess.run(
        [str(bindir / "pg_config"), "--sharedir"], capture_output=True, text=True, check=True
    ).stdout.strip() if (bindir / "pg_config").exists() else f"/usr/share/postgresql/{bindir.parts[-2]}"
    missing = [ext for ext in ("postgis", "pgrouting") if not Path(sharedir, "extension", f"{ext}.control").exists()]
    if missing:
        raise SetupError(f"{' and '.join(missing)} not installed for PostgreSQL in {bindir}; " + INSTALL_HINT)


@dataclass(frozen=True)
class LocalCluster:
    """A PostgreSQL cluster in ``data_dir`` managed with pg_ctl. All methods are idempotent."""

    data_dir: Path
    superuser: str = "gridgov"
    port: int = 5432

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pg"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "postgres.log"

    # -- running commands as the right user -------------------------------------------------------
    @staticmethod
    def _owner() -> str | None:
        """The system user the server runs as when we are root; None when we run it as ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            pwd.getpwnam("postgres")
        except KeyError as exc:
            raise SetupError("running as root needs the 'postgres' system user; " + INSTALL_HINT) from exc
        return "postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        owner = self._owner()
        cmd = [*(["runuser", "-u", owner, "--"] if owner else []), *args]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise SetupError(
                f"{Path(args[0]).name} failed ({result.returncode}): {(result.stderr or result.stdout).strip()}"
                + self._log_tail()
            )
        return result

    def _log_tail(self, lines: int = 15) -> str:
        try:
            tail = self.logfile.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\nlast lines of " + str(self.logfile) + ":\n" + "\n".join(tail)

    def _make_dirs(self) -> None:
        for folder, mode in ((self.data_dir, 0o755), (self.pgdata, 0o700), (self.socket_dir, 0o700)):
            folder.mkdir(parents=True, exist_ok=True)
            folder.chmod(mode)
        self.logfile.touch(exist_ok=True)
        owner = self._owner()
        if owner:
            for path in (self.pgdata, self.socket_dir, self.logfile):
                shutil.chown(path, owner, owner)
            if self._run("test", "-w", str(self.pgdata), check=False).returncode != 0:
                raise SetupError(
                    f"the '{owner}' user that runs PostgreSQL cannot reach {self.data_dir}: a parent folder is "
                    "private (like /root or a 0700 temporary folder); set GRIDGOV_DATA_DIR to a folder such as "
                    "/var/lib/gridgov")

    # -- lifecycle --------------------------------------------------------------------------------
    @property
    def initialized(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists()

    @property
    def is_standby(self) -> bool:
        """A hot standby made by :meth:`standby` (it has ``standby.signal``): read-only, it follows its primary."""
        return (self.pgdata / "standby.signal").exists()

    def init(self) -> bool:
        """Create the cluster if it does not exist. Returns True if it was created now."""
        if self.initialized:
            return False
        bindir = postgres_bindir()
        check_extensions_installed(bindir)
        self._make_dirs()
        self._run(
            str(bindir / "initdb"), "-D", str(self.pgdata), "-U", self.superuser, "-E", "UTF8",
            "--locale=C.UTF-8", "--auth-local=trust", "--auth-host=reject",
        )
        settings = {**SERVER_SETTINGS, "unix_socket_directories": f"'{self.socket_dir}'", "port": str(self.port)}
        with open(self.pgdata / "postgresql.conf", "a") as conf:
            conf.write("\n# gridgov embedded cluster\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        return True

    def running(self) -> bool:
        if not self.initialized:
            return False
        return self._run(str(postgres_bindir() / "pg_ctl"), "status", "-D", str(self.pgdata), check=False).returncode == 0

    def start(self) -> None:
        """Initialise if needed and start the server; waits until it accepts connections (≤ 60 s)."""
        self.init()
        if self.running():
            return
        self._make_dirs()
        self._run(str(postgres_bindir() / "pg_ctl"), "start", "-w", "-t", "60", "-D", str(self.pgdata),
                  "-l", str(self.logfile))
        if not self.is_standby:  # a standby has its primary's roles and may not change them
            self._ensure_roles()

    def _ensure_roles(self) -> None:
        """The owner (LOGIN, no superuser, may not create databases or roles), the service's role (LOGIN), the
        audit's owner (NOLOGIN); the owner is a member of the service's role (to switch to it)."""
        with self._admin_connection() as conn:
            for role, options in ((self.owner, "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE"), (APP_ROLE, "LOGIN"),
                                  (AUDIT_ROLE, "NOLOGIN")):
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
                conn.execute(sql.SQL("{} ROLE {} " + options).format(
                    sql.SQL("ALTER" if exists else "CREATE"), sql.Identifier(role)))
            if not conn.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (self.owner, APP_ROLE)).fetchone()[0]:
                conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(APP_ROLE), sql.Identifier(self.owner)))

    def stop(self, *, crash: bool = False) -> None:
        """Stop the server: cleanly (``fast``: sessions are ended, data flushed), or with ``crash=True`` as by a
        power cut (``immediate``: no checkpoint; the next start runs crash recovery). For fault drills."""
        if self.running():
            self._run(str(postgres_bindir() / "pg_ctl"), "stop", "-w", "-m", "immediate" if crash else "fast",
                      "-D", str(self.pgdata))

    def standby(self, data_dir: Path) -> LocalCluster:
        """A hot standby of this (running) cluster in ``data_dir``, made once and started; returns it.

        ``pg_basebackup -R`` over this cluster's Unix socket copies the cluster (about 3 s for a small one) and
        writes ``standby.signal`` and the ``primary_conninfo`` it streams from; the copy gets its own socket folder
        (same port number: sockets differ by folder) and ``hot_standby_feedback`` (a long read on it does not
        make the primary vacuum away rows it still reads). It follows the primary until it is promoted or
        removed; :meth:`stop` stops it. For tests and trials (``gridgov db standby``); a production replica is
        made by the operator (docs/decisions/0022-read-replicas.md).
        """
        replica = LocalCluster(data_dir, superuser=self.superuser, port=self.port)
        if not replica.initialized:
            replica._make_dirs()  # pg/ empty, 0700, the server's user's: pg_basebackup fills it
            self._run(str(postgres_bindir() / "pg_basebackup"), "-D", str(replica.pgdata), "-R", "-X", "stream",
                      "-c", "fast", "-h", str(self.socket_dir), "-p", str(self.port), "-U", self.superuser)
            with open(replica.pgdata / "postgresql.conf", "a") as conf:
                conf.write(f"\n# gridgov standby of {self.pgdata}\nunix_socket_directories = '{replica.socket_dir}'\n"
                           "hot_standby = on\nhot_standby_feedback = on\n")
        replica.start()
        return replica

    # -- databases --------------------------------------------------------------------------------
    @property
    def owner(self) -> str:
        return OWNER_ROLE

    def url(self, dbname: str) -> str:
        """SQLAlchemy URL of a database of this cluster as its superuser, over its Unix socket (bootstrap,
        restores, tests that play an attacker)."""
        return self._url(self.superuser, dbname)

    def owner_url(self, dbname: str) -> str:
        """SQLAlchemy URL of a database of this cluster as the schema owner (no superuser): migrations, the
        command line, backups."""
        return self._url(self.owner, dbname)

    def _url(self, user: str, dbname: str) -> str:
        return f"postgresql+psycopg://{user}@/{dbname}?host={self.socket_dir}&port={self.port}"

    def _admin_connection(self, dbname: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user=self.superuser, dbname=dbname, autocommit=True
        )

    def ensure_database(self, dbname: str, template: str | None = None) -> bool:
        """Create ``dbname`` (optionally from a template database) unless it exists, then lay it out (extensions,
        owners: :meth:`lay_out`); True if created now."""
        with self._admin_connection() as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
            if not exists:
                query = sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname),
                                                                       sql.Identifier(self.owner))
                if template:
                    query += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
                conn.execute(query)
        self.lay_out(dbname)
        return not exists

    def lay_out(self, dbname: str, *, audit_owner: str = AUDIT_ROLE) -> None:
        """As the superuser: the extensions (only a superuser may create them), then the owners
        (:func:`spatial.store.privileges.lay_out_schema`). Idempotent; upgrades a database of an older gridgov."""
        with self._admin_connection(dbname) as conn:
            for extension in ("postgis", "pgrouting"):
                conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(extension)))
            lay_out_schema(conn, self.owner, audit_owner)

    @contextmanager
    def migration_window(self, dbname: str) -> Iterator[None]:
        """The audit tables belong to the owner while the block runs (a migration may alter them), and to the
        audit's role again afterwards, whether the block succeeded or not."""
        self.lay_out(dbname, audit_owner=self.owner)
        try:
            yield
        finally:
            self.lay_out(dbname)

    def drop_database(self, dbname: str) -> None:
        with self._admin_connection() as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
