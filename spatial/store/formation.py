"""A pg_auto_failover formation on one machine, for trials and drills (docs/decisions/0025-failover.md).

Three PostgreSQL 15 servers under ``folder``, each run by its own ``pg_autoctl run`` supervisor:

* ``monitor/`` — pg_auto_failover's monitor: it health-checks the nodes and orders promotions;
* ``node1/``, ``node2/`` — the data nodes: one primary, one standby (made by ``pg_basebackup`` from the primary),
  with PostGIS and pgRouting, the ``gridgov`` database migrated and laid out as the embedded cluster's
  (:class:`spatial.store.cluster.LocalCluster`: owner ``gridgov_owner``, service ``gridgov_app``).

Everything listens on loopback only: the nodes on ``127.0.0.1`` (replication and the monitor's checks are TCP),
and on one Unix socket folder ``run/`` (mode 0700) that gridgov itself connects through. Ports are chosen free
when the formation is created and kept in ``formation.json``; pg_autoctl's own configuration and state live in
``autoctl/`` (``XDG_CONFIG_HOME``, ``XDG_DATA_HOME``, ``XDG_RUNTIME_DIR``), so two formations do not meet.

Writes are synchronous: pg_auto_failover keeps ``synchronous_standby_names = 'ANY 1 (…)'`` on the primary while its
standby is healthy (``number_sync_standbys = 0``, the standby in the replication quorum) and
``synchronous_commit = on`` (PostgreSQL's default): a commit is acknowledged only once the standby has flushed its
WAL, so the node promoted holds every acknowledged commit. When the standby is down the primary goes on alone
(``wait_primary``): then there is nobody to fail over to, and nothing acknowledged can be lost by a failover.

The monitor is tuned to notice a dead primary in about 2–3 s rather than its default ~30 s
(:data:`MONITOR_SETTINGS`). Trust authentication on loopback for pg_auto_failover's own roles (``autoctl_node``,
``pgautofailover_replicator``): any user of this machine may connect as them — for trials on one machine only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import psycopg

from spatial.errors import SetupError
from spatial.store.cluster import LocalCluster, postgres_bindir
from spatial.store.database import migrate_schema
from spatial.store.engine import make_engine

AUTOCTL_HINT = ("install it with: apt-get update && apt-get install -y postgresql-15-auto-failover "
                "(or run ./dev.sh setup)")
NODES = ("node1", "node2")
MONITOR_DB = "pg_auto_failover"
LOOPBACK = "127.0.0.1"
NODE_SETTINGS = {
    "shared_buffers": "'128MB'", "work_mem": "'32MB'", "maintenance_work_mem": "'128MB'",
    "effective_cache_size": "'1GB'", "log_min_messages": "warning", "timezone": "'UTC'",
    "wal_keep_size": "'256MB'",
}
"""``postgresql.auto.conf`` of every server (it wins over pg_autoctl's tuning, sized for a dedicated machine);
the standby gets the primary's copy from ``pg_basebackup``. Plus ``unix_socket_directories`` = ``run/``."""
HBA = """# gridgov formation: the local socket (its folder is mode 0700), pg_rewind's connection (an old primary
# rejoining), then the loopback rules pg_autoctl appends (replication, the monitor's checks)
local all all trust
local replication all trust
host postgres pgautofailover_replicator 127.0.0.1/32 trust
"""
MONITOR_SETTINGS = {
    "pgautofailover.health_check_period": "1000",       # ms between health checks (default 5000)
    "pgautofailover.health_check_timeout": "1000",      # ms to connect (default 5000)
    "pgautofailover.health_check_max_retries": "1",     # (default 2)
    "pgautofailover.health_check_retry_delay": "500",   # ms (default 2000)
    "pgautofailover.node_considered_unhealthy_timeout": "2000",  # ms without a keeper's report (default 20000)
    "pgautofailover.primary_demote_timeout": "5000",    # ms the standby waits for the old primary (default 30000)
}
"""How fast the monitor acts on a dead primary (failover about 8 s after the kill instead of about 40 s).
``primary_demote_timeout`` is how long the standby waits for an unreachable old primary to have demoted itself;
it stays longer than :data:`KEEPER_SETTINGS`' ``network_partition_timeout``, so an old primary that is alive but cut
off has demoted itself before its standby is promoted. Even without that, the old primary cannot acknowledge a
commit without its synchronous standby, which has stopped replicating from it by then."""
KEEPER_SETTINGS = {"timeout.network_partition_timeout": "3"}
"""Each data node's pg_autoctl: a primary that reaches neither the monitor nor its standby for 3 s (default 20 s)
demotes itself."""


def autoctl_binary() -> str:
    """The path of ``pg_autoctl``; SetupError (with the install command) if it is not installed."""
    found = shutil.which("pg_autoctl")
    if found is None:
        raise SetupError("pg_auto_failover (pg_autoctl) is not installed; " + AUTOCTL_HINT)
    return found


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on loopback now (the kernel's choice)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((LOOPBACK, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def multi_host_url(user: str, dbname: str, socket_dir: Path, ports: list[int], target: str = "read-write") -> str:
    """SQLAlchemy URL of ``dbname`` on every node (one Unix socket folder, one port per node), libpq choosing the
    node by ``target_session_attrs`` (``read-write``: the primary; ``prefer-standby``: a standby if one answers).

    ``postgresql+psycopg://user@/db?host=S,S&port=P1,P2&target_session_attrs=…``: libpq tries the hosts in order
    and skips one that is down or not of the kind asked; SQLAlchemy hands the lists to libpq as they are."""
    if not ports:
        raise ValueError("a multi-host URL needs at least one port")
    if target not in ("read-write", "prefer-standby", "any", "primary", "standby", "read-only"):
        raise ValueError(f"unknown target_session_attrs {target!r}")
    query = urlencode({"host": ",".join([str(socket_dir)] * len(ports)), "port": ",".join(map(str, ports)),
                       "target_session_attrs": target}, safe="/,")
    return f"postgresql+psycopg://{user}@/{dbname}?{query}"


@dataclass(frozen=True)
class Node(LocalCluster):
    """One server of a formation: a :class:`LocalCluster` in ``data_dir`` whose socket is the formation's shared
    ``run/`` folder; pg_autoctl starts and stops it (``pg_ctl`` of LocalCluster only while it is set up)."""

    run_dir: Path = field(default=Path("/nonexistent"))

    @property
    def socket_dir(self) -> Path:
        return self.run_dir


@dataclass(frozen=True)
class Formation:
    """The formation in ``folder`` (see the module's text). Ports are read from ``formation.json`` once created."""

    folder: Path
    dbname: str = "gridgov"

    # -- layout ---------------------------------------------------------------------------------------------
    @property
    def manifest(self) -> Path:
        return self.folder / "formation.json"

    @property
    def run_dir(self) -> Path:
        return self.folder / "run"

    @property
    def autoctl_dir(self) -> Path:
        return self.folder / "autoctl"

    @property
    def created(self) -> bool:
        return self.manifest.exists()

    def ports(self) -> dict[str, int]:
        """name → port of the monitor and the nodes; SetupError if the formation was not created."""
        try:
            return json.loads(self.manifest.read_text())["ports"]
        except (OSError, ValueError, KeyError) as exc:
            raise SetupError(f"no formation in {self.folder} (create it with: gridgov db formation create "
                             f"{self.folder})") from exc

    def node(self, name: str) -> Node:
        return Node(self.folder / name, port=self.ports()[name], run_dir=self.run_dir)

    def url(self, target: str = "read-write", user: str | None = None) -> str:
        """The multi-host URL of the gridgov database as the schema owner (``GRIDGOV_DATABASE_URL``;
        ``target="prefer-standby"``: ``GRIDGOV_READ_DATABASE_URL``)."""
        ports = self.ports()
        return multi_host_url(user or Node(self.folder).owner, self.dbname, self.run_dir,
                              [ports[name] for name in NODES], target)

    # -- pg_autoctl ---------------------------------------------------------------------------------------------
    def _own_env(self) -> dict[str, str]:
        """pg_autoctl's folders (this formation's, not the user's ``~/.config``) and how it reaches its server."""
        return {"XDG_CONFIG_HOME": str(self.autoctl_dir / "config"), "XDG_DATA_HOME": str(self.autoctl_dir / "share"),
                "XDG_RUNTIME_DIR": str(self.autoctl_dir / "run"), "PGHOST": str(self.run_dir),
                "PGUSER": Node(self.folder).superuser}

    def _env(self) -> dict[str, str]:
        return {**os.environ, **self._own_env()}

    def _command(self, *args: str) -> list[str]:
        """``pg_autoctl args`` with :meth:`_own_env` (``runuser`` drops most of the environment), as the
        ``postgres`` user when we are root."""
        owner = LocalCluster._owner()
        env = [f"{k}={v}" for k, v in self._own_env().items()]
        return [*(["runuser", "-u", owner, "--"] if owner else []), "env", *env, autoctl_binary(), *args]

    def _autoctl(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self._command(*args), capture_output=True, text=True, env=self._env(),
                                timeout=timeout)
        if check and result.returncode != 0:
            lines = (result.stderr or result.stdout).strip().splitlines()
            raise SetupError(f"pg_autoctl {args[0]} {args[1] if len(args) > 1 else ''} failed "
                             f"({result.returncode}):\n" + "\n".join(lines[-15:]))
        return result

    def _launch(self, name: str) -> int:
        """``pg_autoctl run`` for ``name`` in its own session (it outlives this process); its log in
        ``<name>/autoctl.log``. Returns its pid (also its process group: :meth:`kill`)."""
        log = open(self.folder / name / "autoctl.log", "ab")
        with log:
            process = subprocess.Popen(self._command("run", "--pgdata", str(self.folder / name / "pg")),
                                       stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=self._env(),
                                       start_new_session=True)
        pids = self._pids()
        pids[name] = process.pid
        (self.folder / "pids.json").write_text(json.dumps(pids))
        return process.pid

    def _pids(self) -> dict[str, int]:
        try:
            return json.loads((self.folder / "pids.json").read_text())
        except (OSError, ValueError):
            return {}

    def supervisor_alive(self, name: str) -> bool:
        """Whether the ``pg_autoctl run`` launched for ``name`` still runs (its pid, not a zombie, still that
        command: a pid reused after a reboot does not count)."""
        pid = self._pids().get(name)
        if pid is None:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        return stat.rsplit(")", 1)[1].split()[0] != "Z" and b"pg_autoctl" in cmdline and \
            str(self.folder / name / "pg").encode() in cmdline

    # -- setting up -----------------------------------------------------------------------------------------
    def _prepare_folders(self) -> None:
        owner = LocalCluster._owner()
        for folder in (self.folder, self.autoctl_dir, *(self.autoctl_dir / d for d in ("config", "share", "run")),
                       self.run_dir, *(self.folder / name for name in ("monitor", *NODES))):
            folder.mkdir(parents=True, exist_ok=True)
            if owner and folder != self.folder:
                shutil.chown(folder, owner, owner)
        self.run_dir.chmod(0o700)

    def _init_server(self, node: Node) -> None:
        """initdb (as LocalCluster does), then the settings that must win over pg_autoctl's, and an HBA with the
        local socket only (pg_autoctl appends its loopback rules; nothing else may come before them)."""
        node.init()
        settings = {**NODE_SETTINGS, "unix_socket_directories": f"'{self.run_dir}'"}
        (node.pgdata / "postgresql.auto.conf").write_text(
            "# gridgov formation: wins over pg_autoctl's tuning\n"
            + "".join(f"{key} = {value}\n" for key, value in settings.items()))
        (node.pgdata / "pg_hba.conf").write_text(HBA)
        owner = LocalCluster._owner()
        if owner:
            for name in ("postgresql.auto.conf", "pg_hba.conf"):
                shutil.chown(node.pgdata / name, owner, owner)

    def create(self, *, timeout_s: float = 180) -> str:
        """Create and start the formation (monitor, primary, standby); returns :meth:`url`.

        The gridgov database is created, laid out and migrated on the primary (as ``gridgov db start`` and
        ``gridgov migrate`` do for the embedded cluster) before the standby copies it. About 20 s (16–30 s measured,
        decision 0025). SetupError if ``folder`` already holds a formation or pg_autoctl fails (its last lines in the
        message)."""
        if self.created:
            raise SetupError(f"{self.folder} already holds a formation (gridgov db formation start {self.folder})")
        if self.folder.exists() and any(self.folder.iterdir()):
            raise SetupError(f"{self.folder} is not empty: give an empty or new folder")
        autoctl_binary()
        self._prepare_folders()
        names = ("monitor", *NODES)
        ports = dict(zip(names, free_ports(len(names)), strict=True))
        self.manifest.write_text(json.dumps({"ports": ports, "dbname": self.dbname}))
        pg_ctl = str(postgres_bindir() / "pg_ctl")
        common = ["--pgctl", pg_ctl, "--hostname", LOOPBACK, "--auth", "trust", "--no-ssl"]

        monitor = self.node("monitor")
        self._init_server(monitor)
        self._autoctl("create", "monitor", "--pgdata", str(monitor.pgdata), "--pgport", str(ports["monitor"]),
                      *common)
        self._autoctl("config", "set", "--pgdata", str(monitor.pgdata), "postgresql.listen_addresses", LOOPBACK)
        self._launch("monitor")
        self._wait(lambda: self._monitor_sql("SELECT 1") is not None, timeout_s, "the monitor to start")
        for key, value in MONITOR_SETTINGS.items():
            self._monitor_sql(f"ALTER SYSTEM SET {key} = '{value}'")
        self._monitor_sql("SELECT pg_reload_conf()")

        primary = self.node(NODES[0])
        self._init_server(primary)
        primary.start()  # by pg_ctl, only to make the roles and the database
        primary.ensure_database(self.dbname)
        engine = make_engine(primary.owner_url(self.dbname), pool_size=1)
        try:
            migrate_schema(engine, primary, self.dbname)
        finally:
            engine.dispose()
        primary.stop()
        for name in NODES:
            node = self.node(name)
            self._autoctl("create", "postgres", "--pgdata", str(node.pgdata), "--pgport", str(node.port),
                          "--listen", LOOPBACK, "--name", name, "--username", node.superuser, "--dbname", self.dbname,
                          "--monitor", self.monitor_url(), *common)
            for key, value in KEEPER_SETTINGS.items():
                self._autoctl("config", "set", "--pgdata", str(node.pgdata), key, value)
            self._launch(name)
            wanted = ("primary", "single") if name == NODES[0] else ("secondary",)
            self._wait(lambda: self.state().get(name, ("", ""))[0] in wanted, timeout_s, f"{name} to be {wanted[0]}")
        self._wait(lambda: self.primary() is not None, timeout_s, "a primary with its standby")
        return self.url()

    def monitor_url(self) -> str:
        """libpq URL of the monitor as the nodes reach it (loopback TCP)."""
        return f"postgres://autoctl_node@{LOOPBACK}:{self.ports()['monitor']}/{MONITOR_DB}?sslmode=disable"

    def _monitor_sql(self, query: str) -> list[tuple] | None:
        """Rows of ``query`` on the monitor as its superuser over the socket; None if it cannot be reached."""
        try:
            with psycopg.connect(host=str(self.run_dir), port=self.ports()["monitor"], user=Node(self.folder).superuser,
                                 dbname=MONITOR_DB, autocommit=True, connect_timeout=3) as conn:
                cursor = conn.execute(query)
                return cursor.fetchall() if cursor.description else []
        except psycopg.OperationalError:
            return None

    @staticmethod
    def _wait(condition, timeout_s: float, what: str, every_s: float = 0.2) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise SetupError(f"timed out after {timeout_s:g} s waiting for {what}")
            time.sleep(every_s)

    # -- running --------------------------------------------------------------------------------------------
    def state(self) -> dict[str, tuple[str, str]]:
        """node name → (state it reported, state the monitor assigned), as the monitor has them; {} if the
        monitor is down."""
        rows = self._monitor_sql("SELECT nodename, reportedstate::text, goalstate::text FROM pgautofailover.node "
                                 "ORDER BY nodeid")
        return {name: (reported, goal) for name, reported, goal in rows or []}

    def primary(self) -> str | None:
        """The node that is primary with a synchronous standby (both states ``primary``/``secondary`` reached),
        None during a failover or while the standby catches up."""
        states = self.state()
        primaries = [n for n, (reported, goal) in states.items() if reported == goal == "primary"]
        standbys = [n for n, (reported, goal) in states.items() if reported == goal == "secondary"]
        return primaries[0] if len(primaries) == 1 and standbys else None

    def writable(self) -> str | None:
        """The node accepting writes now (``primary``, ``wait_primary`` or ``single``), if exactly one does."""
        found = [n for n, (reported, goal) in self.state().items()
                 if reported == goal and reported in ("primary", "wait_primary", "single")]
        return found[0] if len(found) == 1 else None

    def start(self, timeout_s: float = 120) -> None:
        """Start the supervisors that are not running (monitor first) and wait for a writable node."""
        for name in ("monitor", *NODES):
            if not self.supervisor_alive(name):
                self._launch(name)
            if name == "monitor":
                self._wait(lambda: self._monitor_sql("SELECT 1") is not None, timeout_s, "the monitor to start")
        self._wait(lambda: self.writable() is not None, timeout_s, "a writable node")

    def stop(self, timeout_s: float = 60) -> None:
        """Stop every node cleanly (``pg_autoctl stop``: its PostgreSQL too), the data nodes before the monitor."""
        for name in (*NODES, "monitor"):
            if self.supervisor_alive(name):
                self._autoctl("stop", "--pgdata", str(self.folder / name / "pg"), check=False, timeout=timeout_s)
                self._wait(lambda: not self.supervisor_alive(name), timeout_s, f"{name} to stop")

    def kill(self, name: str, what: str = "node") -> None:
        """Kill node ``name`` with SIGKILL. ``what="node"``, as a power cut of its machine would: its supervisor's
        process group (pg_autoctl, its keeper, the postmaster and every backend), so nothing restarts it
        (:meth:`rejoin` brings it back). ``what="postmaster"``: only PostgreSQL's postmaster (its backends end
        with it); pg_autoctl, still running, starts it again (crash recovery) unless the monitor fails over
        first."""
        pid = self._pids().get(name)
        if pid is None or not self.supervisor_alive(name):
            raise SetupError(f"{name} is not running")
        if what == "postmaster":
            postmaster = int((self.folder / name / "pg" / "postmaster.pid").read_text().split()[0])
            os.kill(postmaster, signal.SIGKILL)
            return
        if what != "node":
            raise ValueError(f"kill what={what!r}: 'node' or 'postmaster'")
        os.killpg(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)  # ours when this process launched it; reaped so it is not left a zombie
        except ChildProcessError:
            pass

    def rejoin(self, name: str) -> None:
        """Start node ``name`` again after :meth:`kill`; pg_autoctl makes it the standby of the new primary
        (``pg_rewind`` if needed)."""
        self._launch(name)

    def status(self) -> str:
        """``pg_autoctl show state`` (the monitor's table of nodes), or a sentence when the monitor is down."""
        if self._monitor_sql("SELECT 1") is None:
            return f"the monitor is not running (start the formation: gridgov db formation start {self.folder})"
        result = self._autoctl("show", "state", "--pgdata", str(self.folder / "monitor" / "pg"), check=False)
        return (result.stdout or result.stderr).strip()
