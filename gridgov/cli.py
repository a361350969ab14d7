"""``gridgov``: everything a user does from a shell.

    gridgov demo                 start the embedded database, load the demo neighbourhood, serve on :8000
    gridgov serve                serve the API and map pages
    gridgov db start|stop|status|url
    gridgov db formation create|start|stop|status [FOLDER]   a pg_auto_failover formation (trials, drills)
    gridgov migrate              bring the schema to the newest revision
    gridgov import buildings|streets|osm FILE
    gridgov import grids|enclosures FILE [--dry-run]
    gridgov import divisions FILE [--layer L] [--field code=XZQDM ...] [--crs GCJ-02] [--dry-run] [--reason R]
    gridgov import residents FILE.xlsx|.csv [--mapping M.toml] [--crs C] [--skip-errors] [--dry-run]
                                 exit 0 all written, 1 rows skipped (--skip-errors), 2 refused: nothing written
    gridgov keys init|rotate     the key file sealing ID and phone numbers at rest
    gridgov estimate             estimate households/residents of buildings that have no counts
    gridgov export LAYER FILE    write a layer to GeoJSON, GeoPackage or Shapefile
    gridgov export community FILE --community CODE   a community bundle (.gpkg or .zip)
    gridgov user create NAME --role ROLE [--scope CODE] [--grid CODE ...] [--department NAME]
    gridgov user change NAME [--role ROLE] [--scope CODE] [--grid CODE ... | --no-grids];  user password NAME
    gridgov user deactivate|activate NAME
    gridgov token create NAME --user U [--days N];  token list [--user U];  token revoke ID
    gridgov check                database, extensions, schema and data integrity
    gridgov synthetic-city [--households N]   a large synthetic city (benchmarks), once
    gridgov campaign open NAME --division CODE | --grid CODE ...;  gridgov campaign coverage ID
    gridgov audit seal|verify    chain committed audit rows by hash; check the chain (and its anchors)
    gridgov backup FILE          the whole database to one file (pg_dump custom format)
    gridgov restore FILE [--force]   a backup into the configured database (refuses a non-empty one)
    gridgov federation city CODE;  federation grant [--reader-password P]   a city deployment (its code, its reader)
    gridgov federation attach --city 4403 --url URL;  federation detach --city C   in a province's database
    gridgov federation rollup [--by city|district|community] [--city C] [--from D --to D] [--near LON,LAT,M]

The database is ``GRIDGOV_DATABASE_URL`` if set, else the embedded cluster in ``GRIDGOV_DATA_DIR``.
"""

from __future__ import annotations

import getpass
import os
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from sqlalchemy.orm import Session

from spatial.personal_keys import personal_keys
from spatial.errors import GridgovError
from spatial.settings import Settings
from spatial.store.database import database_url, embedded_cluster, open_database
from spatial.store.engine import acting_as, make_sessionmaker
from spatial.vocab import ROLES


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Domain errors end the command with their message and exit code 2, not a traceback."""
    try:
        yield
    except GridgovError as exc:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        sys.exit(2)


@contextmanager
def _transaction(settings: Settings, actor: str = "cli", reason: str = "command line") -> Iterator[Session]:
    """One transaction on the migrated database: committed if the block succeeds, else rolled back."""
    engine = open_database(settings)
    try:
        with make_sessionmaker(engine).begin() as session, acting_as(session, actor, reason):
            yield session
    finally:
        engine.dispose()


def _progress(label: str) -> Callable[[int, int], None]:
    """A tqdm progress bar as a ``(done, total)`` callback."""
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="feat", leave=True)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update


@click.group(help=__doc__.split("\n\n")[0])
@click.pass_context
def main(ctx: click.Context) -> None:
    ctx.obj = Settings()


# -- database ------------------------------------------------------------------------------------------
@main.group(help="The embedded PostgreSQL cluster (ignored when GRIDGOV_DATABASE_URL is set).")
def db() -> None:
    pass


def _cluster(settings: Settings):
    cluster = embedded_cluster(settings)
    if cluster is None:
        raise click.UsageError("GRIDGOV_DATABASE_URL is set: gridgov does not manage that server")
    return cluster


@db.command("start", help="Initialise (first time) and start the embedded cluster.")
@click.pass_obj
def db_start(settings: Settings) -> None:
    with _reported_errors():
        cluster = _cluster(settings)
        cluster.start()
        cluster.ensure_database(settings.database_name)
        click.echo(f"running: {cluster.pgdata}")


@db.command("stop")
@click.pass_obj
def db_stop(settings: Settings) -> None:
    with _reported_errors():
        _cluster(settings).stop()
        click.echo("stopped")


@db.command("status")
@click.pass_obj
def db_status(settings: Settings) -> None:
    cluster = embedded_cluster(settings)
    if cluster is None:
        click.echo("external database (GRIDGOV_DATABASE_URL)")
        return
    state = "running" if cluster.running() else ("stopped" if cluster.initialized else "not initialised")
    click.echo(f"{state}: {cluster.pgdata}")
    sys.exit(0 if state == "running" else 3)


@db.command("standby", help="Make (first time) and start a hot standby of the embedded cluster in FOLDER, to try "
            "read replicas: prints the GRIDGOV_READ_DATABASE_URL to serve with. --stop stops it (remove FOLDER to "
            "forget it).")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--stop", is_flag=True, help="stop the standby in FOLDER")
@click.pass_obj
def db_standby(settings: Settings, folder: Path, stop: bool) -> None:
    from spatial.store.cluster import LocalCluster

    with _reported_errors():
        cluster = _cluster(settings)
        if stop:
            LocalCluster(folder.resolve(), port=cluster.port).stop()
            click.echo("standby stopped")
            return
        cluster.start()
        cluster.ensure_database(settings.database_name)
        replica = cluster.standby(folder.resolve())
        click.echo(f"standby running: {replica.pgdata}")
        click.echo(f"GRIDGOV_READ_DATABASE_URL={replica.owner_url(settings.database_name)}")


@db.group(help="A pg_auto_failover formation on this machine, for trials and drills: a monitor, a primary and a "
          "synchronous standby, on loopback and one socket folder only (docs/decisions/0025-failover.md). "
          "FOLDER defaults to GRIDGOV_DATA_DIR/formation.")
def formation() -> None:
    pass


_FOLDER = click.argument("folder", required=False, type=click.Path(file_okay=False, path_type=Path))


def _formation(settings: Settings, folder: Path | None):
    from spatial.store.formation import Formation

    return Formation((folder or settings.data_dir / "formation").resolve(), dbname=settings.database_name)


def _print_urls(found) -> None:
    click.echo(f"GRIDGOV_DATABASE_URL={found.url()}")
    click.echo(f"GRIDGOV_READ_DATABASE_URL={found.url('prefer-standby')}")


def _bring_up(settings: Settings, folder: Path | None, step: Callable[[Any], None]) -> None:
    """``step`` (create or start) on the formation, then the monitor's table and the URLs to serve with."""
    with _reported_errors():
        found = _formation(settings, folder)
        step(found)
        click.echo(found.status())
        _print_urls(found)


@formation.command("create", help="Create and start the formation (about 20 s): PostGIS and pgRouting on both "
                   "nodes, the database created and migrated; prints the multi-host URLs to serve with.")
@_FOLDER
@click.pass_obj
def formation_create(settings: Settings, folder: Path | None) -> None:
    _bring_up(settings, folder, lambda found: found.create())


@formation.command("start", help="Start the formation's nodes that are not running (after a stop or a reboot).")
@_FOLDER
@click.pass_obj
def formation_start(settings: Settings, folder: Path | None) -> None:
    _bring_up(settings, folder, lambda found: found.start())


@formation.command("stop", help="Stop every node cleanly (the data nodes, then the monitor).")
@_FOLDER
@click.pass_obj
def formation_stop(settings: Settings, folder: Path | None) -> None:
    with _reported_errors():
        _formation(settings, folder).stop()
        click.echo("stopped")


@formation.command("status", help="The monitor's table of nodes and their states; exit 3 if no node accepts "
                   "writes.")
@_FOLDER
@click.pass_obj
def formation_status(settings: Settings, folder: Path | None) -> None:
    with _reported_errors():
        found = _formation(settings, folder)
        found.ports()  # SetupError naming the create command when there is none
        click.echo(found.status())
        writable = found.writable()
        click.echo(f"accepting writes: {writable or 'no node'}")
        _print_urls(found)
        sys.exit(0 if writable else 3)


@db.command("url", help="Print the database URL (starts the embedded cluster if needed).")
@click.pass_obj
def db_url(settings: Settings) -> None:
    with _reported_errors():
        click.echo(database_url(settings))


@main.command(help="Bring the schema to the newest revision.")
@click.pass_obj
def migrate(settings: Settings) -> None:
    from spatial.store.migrate import current_revisions

    with _reported_errors():
        engine = open_database(settings)
        click.echo(f"schema at revision {', '.join(current_revisions(engine))}")
        engine.dispose()


# -- serving -------------------------------------------------------------------------------------------
def uvicorn_options(settings: Settings) -> dict:
    """How gridgov runs uvicorn. ``proxy_headers`` off: uvicorn's own handling believes ``X-Forwarded-For`` from
    any loopback peer; the app decides from ``settings.trusted_proxies`` (:mod:`api.proxies`). No ``Server``
    header (it named the server and its version)."""
    return {"log_level": "info", "access_log": settings.access_log, "proxy_headers": False, "server_header": False}


def _serve(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from api.app import create_app
    from spatial.basemaps import from_settings

    from_settings(settings.basemaps, settings.basemap_keys)  # a bad basemap setting: a message, before any worker
    click.echo(f"gridgov on http://{host}:{port}/  (API docs: http://{host}:{port}/docs)")
    # where it serves is where its URLs point unless public_url says otherwise (Settings.base_url); workers
    # build their settings from the environment
    settings = settings.model_copy(update={"host": host, "port": port})
    os.environ.update(GRIDGOV_HOST=host, GRIDGOV_PORT=str(port))
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, **uvicorn_options(settings))
        return
    # Start the embedded cluster and migrate once, before the workers (each reads the same settings from the
    # environment and settings file) race to do it.
    open_database(settings).dispose()
    click.echo(f"{settings.workers} worker processes")
    uvicorn.run("api.app:create_app", factory=True, workers=settings.workers, host=host, port=port,
                **uvicorn_options(settings))


@main.command(help="Serve the API and the map pages.")
@click.option("--host", default=None, help="default: settings.host (127.0.0.1)")
@click.option("--port", default=None, type=int, help="default: settings.port (8000)")
@click.pass_obj
def serve(settings: Settings, host: str | None, port: int | None) -> None:
    with _reported_errors():
        _serve(settings, host or settings.host, port or settings.port)


DEMO_USERS = (("admin", "admin", None), ("planner", "planner", "subdistrict"), ("inspector", "inspector", "subdistrict"),
              ("worker", "grid_worker", "grid"), ("viewer", "viewer", "subdistrict"), ("auditor", "auditor", None),
              ("department", "department", None), ("head", "building_head", "building"))
DEMO_DEPARTMENT = "城市管理和综合执法局"
"""The demo department's name: the city-management bureau, which the seeded case categories of the environment
dispatch to (migration 0012), so that its account has cases to see once the dispatcher sends them."""


def _demo_users(session: Session, credentials: Path) -> str:
    """Create the demo users once, with one random password kept in ``credentials`` (mode 0600)."""
    from sqlalchemy import select

    from sqlalchemy import text

    from spatial.store import team, users
    from spatial.store.models import Division, Grid, User

    known = credentials.exists() and session.scalar(select(User).where(User.username == "admin"))
    password = credentials.read_text().strip() if known else secrets.token_urlsafe(9)
    subdistrict = session.scalar(select(Division.code).where(Division.level == "subdistrict").order_by(Division.code))
    first_grid = session.scalar(select(Grid.code).order_by(Grid.code))
    for name, role, scope in DEMO_USERS:
        if session.scalar(select(User).where(User.username == name)):
            continue
        user = users.create_user(session, name, password, role, display_name=f"demo {role}",
                                 scope_code=subdistrict if scope in ("subdistrict", "grid") else None,
                                 grid_codes=(first_grid,) if scope == "grid" and first_grid else (),
                                 department=DEMO_DEPARTMENT if role == "department" else None)
        if scope == "building":  # the head of the first building of the first grid (楼栋长)
            building = session.execute(text("SELECT b.code FROM buildings b JOIN grids g ON g.id = b.grid_id "
                                            "WHERE g.code = :g ORDER BY b.code LIMIT 1"), {"g": first_grid}).scalar()
            if building:
                admin = users.principal_for_user(session, session.scalars(
                    select(User).where(User.username == "admin")).one())
                team.assign(session, admin, username=user.username, duty="building_head", building_code=building)
    if not known:
        credentials.parent.mkdir(parents=True, exist_ok=True)
        credentials.unlink(missing_ok=True)
        fd = os.open(credentials, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(password + "\n")
    os.chmod(credentials, 0o600)  # also a file left by an older version
    return password


@main.command(help="Start the embedded database, load the demo neighbourhood (once) and serve.")
@click.option("--serve/--no-serve", "serve_after", default=True)
@click.option("--host", default=None)
@click.option("--port", default=None, type=int)
@click.pass_obj
def demo(settings: Settings, serve_after: bool, host: str | None, port: int | None) -> None:
    from fixtures.demo import load_demo

    with _reported_errors():
        personal_keys(settings, create=True)  # created (0600) when missing: the demo is for trying gridgov out
        with _transaction(settings, "demo", "demo neighbourhood") as session:
            counts = load_demo(session)
            _demo_users(session, settings.data_dir / "demo-credentials.txt")
        click.echo("demo data: " + ", ".join(f"{k} {v}" for k, v in counts.items() if isinstance(v, int)))
        # not the password itself: this output ends up in logs (systemd, CI, terminals shared on screen)
        click.echo(f"demo users: {', '.join(name for name, _, _ in DEMO_USERS)}; their password is in "
                   f"{settings.data_dir / 'demo-credentials.txt'} (readable by you only)")
        if serve_after:
            _serve(settings, host or settings.host, port or settings.port)


# -- data ----------------------------------------------------------------------------------------------
@main.group("import", help="Import buildings, streets or OpenStreetMap extracts (idempotent; one transaction).")
def import_() -> None:
    pass


@import_.command("buildings", help="Buildings from a GeoPackage, GeoJSON or Shapefile.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layer", default=None)
@click.option("--origin", default=None, help="name of the source (default: file and layer)")
@click.option("--on-invalid", type=click.Choice(["fail", "skip", "repair"]), default="fail", show_default=True)
@click.pass_obj
def import_buildings(settings: Settings, path: Path, layer: str | None, origin: str | None, on_invalid: str) -> None:
    from spatial.io import import_buildings as run
    from spatial.io.safe_files import COMMAND_LINE

    with _reported_errors(), _transaction(settings, reason=f"import {path.name}") as session:
        report = run(session, path, layer=layer, origin=origin, on_invalid=on_invalid, progress=_progress("buildings"),
                     limits=COMMAND_LINE)
    click.echo(report.summary())


@import_.command("streets", help="A street network: an osmnx edge list (u/v + a nodes layer), or any line layer "
                                 "(road centrelines, Geofabrik roads), noded from its geometry.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layer", default=None, help="the line layer (default: 'streets', or the file's only layer)")
@click.option("--nodes-layer", default=None, help="nodes of an edge list (default: 'street_nodes' when present)")
@click.option("--crs", default=None, help="what the coordinates really are, whatever the file declares "
                                          "(GCJ-02, BD-09, EPSG:4547, ...)")
@click.option("--snap-m", type=float, default=None,
              help="line layers: ends this close (metres) to each other or to a line are joined (default 0.5)")
@click.pass_obj
def import_streets(settings: Settings, path: Path, layer: str | None, nodes_layer: str | None, crs: str | None,
                   snap_m: float | None) -> None:
    from spatial.io import import_streets as run
    from spatial.io.safe_files import COMMAND_LINE

    with _reported_errors(), _transaction(settings, reason=f"import {path.name}") as session:
        snap = {} if snap_m is None else {"snap_m": snap_m}
        report = run(session, path, layer=layer, nodes_layer=nodes_layer, crs=crs, progress=_progress("streets"),
                     limits=COMMAND_LINE, **snap)
    click.echo(report.summary())


@import_.command("osm", help="Buildings and the street/footpath network from an .osm.pbf extract.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.pass_obj
def import_osm(settings: Settings, path: Path) -> None:
    from spatial.io import import_osm_pbf as run

    with _reported_errors(), _transaction(settings, reason=f"import {path.name}") as session:
        report = run(session, path, progress=_progress("osm"))
    click.echo(report.summary())


def _import_grid_file(settings: Settings, kind: str, path: Path, layer: str | None, community: str | None,
                  reason: str | None, dry_run: bool) -> None:
    from spatial.io.grid_files import import_grid_file
    from spatial.io.safe_files import COMMAND_LINE

    reason = reason or f"import {path.name}"
    with _reported_errors(), _transaction(settings, reason=reason) as session:
        report = import_grid_file(session, path, kind, layer=layer, community=community, actor="cli", reason=reason,
                              dry_run=dry_run, metric_srid=settings.metric_srid, progress=_progress(kind),
                              limits=COMMAND_LINE)
    click.echo(report.summary())
    sys.exit(1 if report.errors else 0)


@import_.command("residents", help="A population ledger (实有人口): one row per person, Chinese headers (姓名, "
                                   "身份证号, 联系电话, 与户主关系, 楼栋编码, 单元, 楼层, 房号, 人员类型, 标签, 经度, 纬度 …). "
                                   "Every rejected row is listed; nothing is written if any is, unless --skip-errors. "
                                   "Exit status: 0 every row written; 1 rejected rows skipped, the others written "
                                   "(--skip-errors); 2 refused, nothing written (rejected rows without --skip-errors, "
                                   "or a file that cannot be read). A --dry-run exits as the import would.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--mapping", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="TOML file naming the columns (see spatial.io.residents)")
@click.option("--crs", default=None, help="CRS of the 经度/纬度 columns (default EPSG:4326; GCJ-02, BD-09 too)")
@click.option("--skip-errors", is_flag=True, help="write the accepted rows even when some are rejected")
@click.option("--dry-run", is_flag=True, help="check and count, write nothing")
@click.option("--area", type=click.Choice(["buildings", "communities"]), default="buildings", show_default=True,
              help="who is marked moved out when absent: residents of the ledger's buildings, or of its communities")
@click.option("--as-of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
              help="date of undated moves and move-outs (default today)")
@click.option("--max-distance", "max_distance_m", type=float, default=None,
              help="placing by position: nearest building within this many metres (default 30)")
@click.pass_obj
def import_residents(settings: Settings, path: Path, mapping: Path | None, crs: str | None, skip_errors: bool,
                     dry_run: bool, area: str, as_of, max_distance_m: float | None) -> None:
    from spatial.io.residents import import_residents as run

    with _reported_errors():
        keys = personal_keys(settings)
        with _transaction(settings, reason=f"import {path.name}") as session:
            report = run(session, path, keys, mapping=mapping, crs=crs, skip_errors=skip_errors, dry_run=dry_run,
                         area=area, as_of=as_of.date() if as_of else None, max_distance_m=max_distance_m)
    click.echo(report.summary())
    sys.exit(residents_exit_status(report.issue_count, skip_errors))


def residents_exit_status(rejected: int, skip_errors: bool) -> int:
    """``gridgov import residents``' exit status: 0 no row rejected (all written, or would be in a dry run), 1
    rows rejected and skipped (the others written), 2 rows rejected and nothing written (without --skip-errors;
    also the status of any refusal, :func:`_reported_errors`)."""
    if not rejected:
        return 0
    return 1 if skip_errors else 2


@import_.command("grids", help="Grids drawn elsewhere, checked like an edit (inside the community, no overlap); "
                               "nothing is written if any feature fails. Exit 1 on errors.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layer", default=None)
@click.option("--community", default=None, help="community of features that name none (else found by location)")
@click.option("--reason", default=None, help="recorded in the grid history (default: import FILE)")
@click.option("--dry-run", is_flag=True, help="only check and report")
@click.pass_obj
def import_grids(settings: Settings, path: Path, layer: str | None, community: str | None, reason: str | None,
                 dry_run: bool) -> None:
    _import_grid_file(settings, "grids", path, layer, community, reason, dry_run)


@import_.command("enclosures", help="Enclosures (围合) drawn elsewhere, checked and reported. Exit 1 on errors.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layer", default=None)
@click.option("--community", default=None)
@click.option("--reason", default=None)
@click.option("--dry-run", is_flag=True, help="only check and report")
@click.pass_obj
def import_enclosures(settings: Settings, path: Path, layer: str | None, community: str | None,
                      reason: str | None, dry_run: bool) -> None:
    _import_grid_file(settings, "enclosures", path, layer, community, reason, dry_run)


@import_.command("divisions", help="Subdistricts and communities (12-digit codes, names) drawn elsewhere, checked "
                                   "(code structure, inside the parent, no overlap, land in no community); nothing "
                                   "is written if any feature fails. Exit 1 on errors.")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--layer", default=None)
@click.option("--field", "fields", multiple=True, metavar="ROLE=FIELD",
              help="the file's field for code, name, level or name_en (default: 代码/编码/code, 名称/name, 级别/level)")
@click.option("--crs", default=None, help="GCJ-02 or BD-09: the file's lon/lat come from a Chinese web map")
@click.option("--district-name", default=None, help="name of the district if it is not stored yet")
@click.option("--reason", default=None, help="recorded in the division history (default: import FILE)")
@click.option("--dry-run", is_flag=True, help="only check and report")
@click.pass_obj
def import_divisions(settings: Settings, path: Path, layer: str | None, fields: tuple[str, ...], crs: str | None,
                     district_name: str | None, reason: str | None, dry_run: bool) -> None:
    from spatial.io.division_files import import_division_file
    from spatial.io.safe_files import COMMAND_LINE

    mapping = dict(f.split("=", 1) for f in fields if "=" in f)
    if len(mapping) != len(fields):
        raise click.UsageError("--field takes ROLE=FIELD, e.g. --field code=XZQDM")
    reason = reason or f"import {path.name}"
    with _reported_errors(), _transaction(settings, reason=reason) as session:
        report = import_division_file(session, path, layer=layer, fields=mapping, crs=crs, district_name=district_name,
                                      actor="cli", reason=reason, dry_run=dry_run, metric_srid=settings.metric_srid,
                                      limits=COMMAND_LINE)
    click.echo(report.summary())
    sys.exit(1 if report.errors else 0)


@main.command(help="Estimate households and residents of buildings without counts (marked as estimated).")
@click.option("--seed", default=2020, show_default=True)
@click.pass_obj
def estimate(settings: Settings, seed: int) -> None:
    from spatial.store.occupancy import estimate_occupancy

    with _reported_errors(), _transaction(settings, reason="occupancy estimate") as session:
        count = estimate_occupancy(session, seed=seed)
    click.echo(f"estimated {count} buildings")


@main.command(help="Write a layer (grids, buildings, streets, ...) to .geojson, .gpkg or .shp; or, with LAYER "
                    "'community' and --community CODE, a community bundle (.gpkg, or .zip of shp/geojson files).")
@click.argument("layer")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--crs", default=None, help="output coordinates (default EPSG:4326; GCJ-02, BD-09 too)")
@click.option("--community", default=None, help="only what lies in this community (12-digit code)")
@click.option("--format", "fmt", type=click.Choice(["shp", "geojson"]), default=None,
              help="files inside a .zip bundle (default shp)")
@click.option("--households/--no-households", default=True, show_default=True,
              help="community bundle: include households (masked unless --reveal)")
@click.option("--reveal", is_flag=True, help="community bundle: full personal fields (audited; needs --purpose)")
@click.option("--purpose", default=None, help="why personal data are revealed (written to the audit log)")
@click.pass_obj
def export(settings: Settings, layer: str, path: Path, crs: str | None, community: str | None, fmt: str | None,
           households: bool, reveal: bool, purpose: str | None) -> None:
    from spatial.io.export import export_community, export_layer
    from spatial.access import Principal

    operator = Principal(user_id=0, username="cli", role="admin", client_addr="command line")
    with _reported_errors(), _transaction(settings, reason=purpose or "export") as session:
        if layer == "community":
            if community is None:
                raise click.UsageError("a community bundle needs --community CODE")
            counts = export_community(session, operator, community, path, crs=crs, fmt=fmt, households=households,
                                      reveal=reveal, purpose=purpose, metric_srid=settings.metric_srid,
                                      progress=_progress("layers"), keys=lambda: personal_keys(settings))
            click.echo(f"wrote {path}: " + ", ".join(f"{name} {n}" for name, n in counts.items()))
            return
        count = export_layer(session, operator, layer, path, crs=crs, metric_srid=settings.metric_srid,
                             community=community)
    click.echo(f"wrote {count} features to {path}")


# -- personal-data keys ---------------------------------------------------------------------------------
@main.group(help="The key file sealing ID and phone numbers at rest (GRIDGOV_PERSONAL_KEY_FILE, default "
                 "DATA_DIR/personal.key). Keep it 0600 and apart from database backups.")
def keys() -> None:
    pass


@keys.command("init", help="Create the key file (refused if it exists).")
@click.pass_obj
def keys_init(settings: Settings) -> None:
    from spatial.personal_keys import PersonalKeys

    with _reported_errors():
        PersonalKeys.create(settings.personal_key_path)
    click.echo(f"created {settings.personal_key_path} (0600): back it up apart from the database")


@keys.command("rotate", help="Add a new key, re-seal and re-hash every stored ID and phone number with it in one "
                             "transaction, then drop the old key from the file. Safe to run again after a crash.")
@click.pass_obj
def keys_rotate(settings: Settings) -> None:
    from spatial.personal_keys import PersonalKeys
    from spatial.store.persons import reseal

    with _reported_errors():
        current = PersonalKeys.load(settings.personal_key_path)
        # the file gets the new key first: a crash after the commit still finds every value's key in it
        rotated = current.with_new_key() if len(current.secrets) == 1 else current
        with _transaction(settings, reason="rotate the personal-data key") as session:
            count = reseal(session, rotated)
        rotated.only_current()
    click.echo(f"re-sealed {count} persons under key {rotated.current.id}; older keys removed from "
               f"{settings.personal_key_path}")


# -- users ---------------------------------------------------------------------------------------------
@main.group(help="User accounts.")
def user() -> None:
    pass


def _operator() -> str:
    """Who runs this command, for the audit log of account changes: ``cli:<OS user>`` (``cli`` if the OS cannot
    say)."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(password: str) -> str:
    return sys.stdin.readline().rstrip("\n") if password == "-" else password


_PASSWORD_HELP = "prompted for when not given; use --password - to read it from standard input"


@user.command("create", help="Create a user (audited: user_create, by the OS user).")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), required=True)
@click.option("--scope", "scope_code", default=None, help="division code whose subtree the user sees")
@click.option("--grid", "grids", multiple=True, help="grid code assigned to the user (repeatable)")
@click.option("--display-name", default=None)
@click.option("--department", default=None, help="role department: the department's name, as cases are "
                                                  "dispatched to it (e.g. 城市管理和综合执法局)")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help=_PASSWORD_HELP)
@click.option("--reason", default="create user", show_default=True, help="why (written to the audit log)")
@click.pass_obj
def user_create(settings: Settings, username: str, role: str, scope_code: str | None, grids: tuple[str, ...],
                display_name: str | None, department: str | None, password: str, reason: str) -> None:
    from spatial.store.users import create_user

    with _reported_errors(), _transaction(settings, _operator(), reason) as session:
        create_user(session, username, _password(password), role, scope_code=scope_code, display_name=display_name,
                    grid_codes=grids, reason=reason, department=department)
    click.echo(f"created {role} {username}")


@user.command("change", help="Change a user's role, scope, grids or display name (audited, by the OS user).")
@click.argument("username")
@click.option("--role", type=click.Choice(list(ROLES)), default=None)
@click.option("--scope", "scope_code", default=None, help="division code whose subtree the user sees ('' for none)")
@click.option("--grid", "grids", multiple=True, help="grid code: the user's grids become those given (repeatable)")
@click.option("--no-grids", is_flag=True, help="take every grid from the user")
@click.option("--display-name", default=None)
@click.option("--reason", default="change user", show_default=True, help="why (written to the audit log)")
@click.pass_obj
def user_change(settings: Settings, username: str, role: str | None, scope_code: str | None, grids: tuple[str, ...],
                no_grids: bool, display_name: str | None, reason: str) -> None:
    from spatial.store.users import change_user

    if grids and no_grids:
        raise click.UsageError("--grid and --no-grids exclude each other")
    with _reported_errors(), _transaction(settings, _operator(), reason) as session:
        change_user(session, username, role=role, scope_code=scope_code, display_name=display_name,
                    grid_codes=() if no_grids else grids or None, reason=reason)
    click.echo(f"changed {username}")


@user.command("password", help="Set a user's password; their tokens are revoked (audited, by the OS user).")
@click.argument("username")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True, help=_PASSWORD_HELP)
@click.pass_obj
def user_password(settings: Settings, username: str, password: str) -> None:
    from spatial.store.users import change_user

    with _reported_errors(), _transaction(settings, _operator(), "set password") as session:
        change_user(session, username, password=_password(password), reason="set password")
    click.echo(f"password of {username} set; their tokens are revoked")


def _set_active(settings: Settings, username: str, active: bool, reason: str) -> None:
    from spatial.store.users import change_user

    with _reported_errors(), _transaction(settings, _operator(), reason) as session:
        change_user(session, username, active=active, reason=reason)
    click.echo(f"{'activated' if active else 'deactivated'} {username}")


@user.command("deactivate", help="Deactivate a user: no login, their tokens revoked (audited, by the OS user).")
@click.argument("username")
@click.option("--reason", default="deactivate user", show_default=True, help="why (written to the audit log)")
@click.pass_obj
def user_deactivate(settings: Settings, username: str, reason: str) -> None:
    _set_active(settings, username, False, reason)


@user.command("activate", help="Let a deactivated user log in again (audited, by the OS user).")
@click.argument("username")
@click.option("--reason", default="activate user", show_default=True, help="why (written to the audit log)")
@click.pass_obj
def user_activate(settings: Settings, username: str, reason: str) -> None:
    _set_active(settings, username, True, reason)


# -- personal access tokens ----------------------------------------------------------------------------
@main.group(help="Personal access tokens: read-only passwords of HTTP Basic for GIS clients (QGIS 3.22).")
def token() -> None:
    pass


@token.command("create", help="Make a token for a user and print its secret (shown once; audited, by the OS user).")
@click.argument("name")
@click.option("--user", "username", required=True, help="whose token: it acts with their role and area")
@click.option("--days", type=click.IntRange(1, 365), default=90, show_default=True, help="lifetime in days")
@click.pass_obj
def token_create(settings: Settings, name: str, username: str, days: int) -> None:
    from spatial.store.tokens import create_token

    with _reported_errors(), _transaction(settings, _operator(), "create access token") as session:
        info, secret = create_token(session, username, name, days=days, actor=_operator())
    click.echo(f"token {info.id} of {username} ({info.name!r}, read-only, expires {info.expires_at:%Y-%m-%d %H:%M %Z})")
    click.echo("the secret, shown this once (the password of HTTP Basic, with the user name):")
    click.echo(secret)


@token.command("list", help="List tokens (of --user, else everyone's), newest first; never their secrets.")
@click.option("--user", "username", default=None)
@click.pass_obj
def token_list(settings: Settings, username: str | None) -> None:
    from spatial.store.tokens import list_tokens

    with _reported_errors(), _transaction(settings, _operator()) as session:
        found = list_tokens(session, username)
    for t in found:
        used = f"{t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never"
        click.echo(f"{t.id}\t{t.username}\t{t.name}\t{t.hint}…\t{t.state}\texpires {t.expires_at:%Y-%m-%d}"
                   f"\tlast used {used}")
    if not found:
        click.echo("no tokens")


@token.command("revoke", help="Revoke a token by id (audited, by the OS user); it stops working at once.")
@click.argument("token_id", type=int)
@click.pass_obj
def token_revoke(settings: Settings, token_id: int) -> None:
    from spatial.store.tokens import revoke_token

    with _reported_errors(), _transaction(settings, _operator(), "revoke access token") as session:
        info, _ = revoke_token(session, token_id, actor=_operator())
    click.echo(f"revoked token {info.id} of {info.username} ({info.name!r})")


# -- checks --------------------------------------------------------------------------------------------
@main.command(help="Check the database, extensions, schema and data integrity; exit 1 if anything fails.")
@click.pass_obj
def check(settings: Settings) -> None:
    from spatial.store.checks import run_checks

    with _reported_errors(), _transaction(settings) as session:
        results = run_checks(session, settings.metric_srid)
    for result in results:
        click.secho(f"{'ok  ' if result.ok else 'FAIL'} {result.name}: {result.detail}", fg=None if result.ok else "red")
    sys.exit(0 if all(r.ok for r in results) else 1)


# -- field work ----------------------------------------------------------------------------------------
_CLI_ADMIN = "cli"


@main.command("synthetic-city", help="Load a synthetic city of N households (grids, buildings, households, lanes) "
                                     "for benchmarks and load tests; does nothing if it is already there.")
@click.option("--households", default=1_000_000, show_default=True, type=click.IntRange(1, 12_000_000))
@click.option("--seed", default=7, show_default=True)
@click.pass_obj
def synthetic_city(settings: Settings, households: int, seed: int) -> None:
    from fixtures.synthetic_city import load_city

    with _reported_errors(), _transaction(settings, "synthetic", "synthetic city") as session:
        counts = load_city(session, households=households, seed=seed)
    click.echo("synthetic city: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))


@main.group(help="Screening campaigns (排查): open one, read its coverage.")
def campaign() -> None:
    pass


def _shell_admin():
    from spatial.access import Principal

    return Principal(user_id=0, username=_CLI_ADMIN, role="admin", client_addr="local shell")


@campaign.command("open", help="Open a campaign over a division (community/subdistrict) or grids.")
@click.argument("name")
@click.option("--division", "division_code", default=None)
@click.option("--grid", "grid_codes", multiple=True, help="grid code (repeatable)")
@click.option("--flag-distance", "flag_distance_m", default=100.0, show_default=True,
              help="metres from the building beyond which a visit is flagged")
@click.pass_obj
def campaign_open(settings: Settings, name: str, division_code: str | None, grid_codes: tuple[str, ...],
                  flag_distance_m: float) -> None:
    from spatial.store.campaigns import open_campaign

    with _reported_errors(), _transaction(settings, _CLI_ADMIN, f"open campaign {name}") as session:
        opened = open_campaign(session, _shell_admin(), name, grid_codes=grid_codes, division_code=division_code,
                               flag_distance_m=flag_distance_m)
    click.echo(f"campaign {opened.id} open: {len(opened.grid_ids)} grids, {opened.targeted:,} households")


@campaign.command("coverage", help="Households (and their persons) screened / targeted per grid, community and in "
                                    "total.")
@click.argument("campaign_id", type=int)
@click.pass_obj
def campaign_coverage(settings: Settings, campaign_id: int) -> None:
    from spatial.store.campaigns import progress

    with _reported_errors(), _transaction(settings) as session:
        rows = progress(session, _shell_admin(), campaign_id)
    for r in rows:
        click.echo(f"{r.level:<10} {r.code or '(total)':<15} {r.screened:>9,} / {r.targeted:>9,}  "
                   f"{100 * r.ratio:6.2f}%  persons {r.persons_screened:,} / {r.persons_targeted:,}  "
                   f"flagged {r.flagged}")



@main.group(help="Patrol records (巡查记录): retention of workers' tracks.")
def patrols() -> None:
    pass


@patrols.command("prune", help="Close patrols left open longer than patrol_open_hours as abandoned, and reduce the "
                               "records ended more than patrol_track_days ago to their scores (fixes, route and "
                               "check-in positions deleted). Run it daily (cron / a systemd timer).")
@click.option("--days", type=click.IntRange(1, 3650), default=None, help="default: settings' patrol_track_days")
@click.pass_obj
def patrols_prune(settings: Settings, days: int | None) -> None:
    from spatial.store.patrol_records import prune

    days = days or settings.patrol_track_days
    with _reported_errors(), _transaction(settings, _CLI_ADMIN, "patrol track retention") as session:
        done = prune(session, days=days, open_hours=settings.patrol_open_hours, metric_srid=settings.metric_srid)
    click.echo(f"{len(done.abandoned)} open patrols closed as abandoned; {len(done.reduced)} tracks older than "
               f"{days} days reduced to their scores")


@main.group(help="A federation of cities (docs/decisions/0026-federation.md): state this deployment's city, let a "
                 "province read its roll-ups, or (in the province's database) attach cities and read the roll-ups.")
def federation() -> None:
    pass


@contextmanager
def _federation_connection(settings: Settings, *, superuser: bool = False) -> Iterator:
    """A connection in a transaction to the configured database (not migrated: a province's database need not be a
    city's): the embedded cluster's superuser with ``superuser``, else the configured URL; database errors (a
    missing privilege, an unreachable city) end the command with their message."""
    from sqlalchemy.exc import DBAPIError

    from spatial.store.engine import make_engine

    url = database_url(settings)
    cluster = embedded_cluster(settings)
    engine = make_engine(cluster.url(settings.database_name) if superuser and cluster else url, pool_size=1)
    try:
        with _reported_errors(), engine.begin() as conn:
            yield conn
    except DBAPIError as exc:
        click.secho(f"error: {str(exc.orig).strip().splitlines()[0]}", fg="red", err=True)
        sys.exit(2)
    finally:
        engine.dispose()


@federation.command("city", help="State the city this deployment serves (4 digits: province 2 + city 2): the "
                                 "default of city_code on the hot tables; rows of another code are relabelled.")
@click.argument("code")
@click.pass_obj
def federation_city(settings: Settings, code: str) -> None:
    from spatial.store import federation as fed

    open_database(settings).dispose()  # migrated
    with _federation_connection(settings) as conn:
        changed = fed.set_city_code(conn, code)
    click.echo(f"this deployment serves city {code}; {changed:,} rows relabelled")


@federation.command("grant", help="In a city's database: the role gridgov_federation (SELECT on the roll-up views "
                                  "only) and the login role gridgov_province a province maps to (needs CREATEROLE; "
                                  "the embedded cluster's superuser is used).")
@click.option("--reader-password", default=None, help="password of gridgov_province (a province over TCP needs one)")
@click.pass_obj
def federation_grant(settings: Settings, reader_password: str | None) -> None:
    from spatial.store import federation as fed

    open_database(settings).dispose()  # migrated: the views exist
    with _federation_connection(settings, superuser=True) as conn:
        fed.grant_federation_role(conn, reader_password)
        code = fed.city_code(conn)
    click.echo(f"{fed.READER_ROLE} may read the roll-ups of city {code}"
               + (" (state the city first: gridgov federation city CODE)" if code == fed.UNSTATED else ""))


@federation.command("attach", help="In the province's database: attach a city's deployment (postgres_fdw; needs a "
                                   "superuser, the embedded cluster's is used). URL: the city's database as "
                                   "gridgov_province, e.g. postgresql://gridgov_province:PW@host:5432/gridgov.")
@click.option("--city", required=True, help="its 4-digit code; the city's database must say the same")
@click.option("--url", required=True)
@click.pass_obj
def federation_attach(settings: Settings, city: str, url: str) -> None:
    from spatial.store import federation as fed

    with _federation_connection(settings, superuser=True) as conn:
        fed.attach_city(conn, city, url)
        cities = fed.attached_cities(conn)
    click.echo(f"city {city} attached; the province reads {', '.join(cities)}")


@federation.command("detach", help="In the province's database: drop a city's server and partitions.")
@click.option("--city", required=True)
@click.pass_obj
def federation_detach(settings: Settings, city: str) -> None:
    from spatial.store import federation as fed

    with _federation_connection(settings, superuser=True) as conn:
        found = fed.detach_city(conn, city)
    click.echo(f"city {city} detached" if found else f"city {city} was not attached")


@federation.command("rollup", help="In the province's database: households, persons, coverage, cases (open, overdue, "
                                   "due, closed, 结案率) and risk zones in force, per city (or district/community).")
@click.option("--by", type=click.Choice(["city", "district", "community"]), default="city", show_default=True)
@click.option("--city", default=None, help="one city's partition only")
@click.option("--division", default=None, help="communities whose code starts so (4–12 digits)")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="cases due from this day (default: the first of this month, Asia/Shanghai)")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), default=None, help="… to this day (default today)")
@click.option("--near", default=None, metavar="LON,LAT,METRES", help="only what lies within METRES of the point")
@click.pass_obj
def federation_rollup(settings: Settings, by: str, city: str | None, division: str | None, date_from, date_to,
                      near: str | None) -> None:
    from datetime import datetime

    from spatial.store import federation as fed
    from spatial.worktime import LOCAL

    now = datetime.now(LOCAL)
    end = date_to.date() if date_to else now.date()
    start = date_from.date() if date_from else end.replace(day=1)
    point = None
    if near:
        try:
            point = fed.Near(*(float(v) for v in near.split(",")))
        except (TypeError, ValueError):
            raise click.BadParameter("LON,LAT,METRES, e.g. 114.06,22.54,2000", param_hint="--near") from None
    with _federation_connection(settings) as conn:
        fed.require_attached(conn)
        rows = fed.rollup(conn, by=by, at=now, date_from=start, date_to=end, city=city, division=division,
                          near=point)
    click.echo(f"{'city':<5} {'key':<13} {'households':>11} {'persons':>10} {'coverage':>9} {'open':>6} "
               f"{'overdue':>7} {'due':>6} {'closed':>6} {'结案率':>7}  zones")
    for r in rows:
        coverage = "-" if r.coverage is None else f"{100 * r.coverage:.2f}%"
        closure = "-" if r.closure_rate is None else f"{100 * r.closure_rate:.2f}%"
        zones = ", ".join(f"{k} {v}" for k, v in sorted(r.zones.items())) or "-"
        click.echo(f"{r.city_code:<5} {r.key or '':<13} {r.households:>11,} {r.persons:>10,} {coverage:>9} "
                   f"{r.open_cases:>6,} {r.overdue_cases:>7,} {r.due:>6,} {r.closed:>6,} {closure:>7}  {zones}")
    click.echo(f"cases due {start} – {end}; open, overdue and zones at {now:%Y-%m-%d %H:%M} Asia/Shanghai")


@main.group("inspect", help="Inspection (督查): openings of enclosures, coverage reports, checkpoint siting.")
def inspection() -> None:
    pass


@inspection.command("scan", help="Detect the openings of enclosures (all, or --enclosure ID) where streets cross them.")
@click.option("--enclosure", "enclosure_ids", type=int, multiple=True)
@click.pass_obj
def inspect_scan(settings: Settings, enclosure_ids: tuple[int, ...]) -> None:
    from spatial.store import openings

    with _reported_errors(), _transaction(settings, _CLI_ADMIN, "scan openings") as session:
        ids = list(enclosure_ids) or openings.visible_enclosure_ids(session, _shell_admin())
        results = openings.scan_openings(session, ids, actor=_CLI_ADMIN, metric_srid=settings.metric_srid)
    for r in results:
        far = f", {len(r.far_checkpoints)} checkpoints far from the perimeter" if r.far_checkpoints else ""
        click.echo(f"enclosure {r.enclosure_id}: {r.crossings} crossings, {len(r.added)} added, "
                   f"{len(r.removed)} removed, {len(r.linked_checkpoints)} checkpoints linked{far}")


@inspection.command("report", help="Coverage report of a division (or --enclosure); --html FILE writes the printable "
                                   "page.")
@click.option("--division", default=None, help="community or subdistrict code")
@click.option("--enclosure", "enclosure_id", type=int, default=None)
@click.option("--threshold", "threshold_m", default=300.0, show_default=True, help="metres")
@click.option("--distance", type=click.Choice(["walk", "straight"]), default="walk", show_default=True)
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.pass_obj
def inspect_report(settings: Settings, division: str | None, enclosure_id: int | None, threshold_m: float,
                   distance: str, html_path: Path | None) -> None:
    from spatial.store import coverage

    with _reported_errors(), _transaction(settings, _CLI_ADMIN, "coverage report") as session:
        report = coverage.coverage_report(session, _shell_admin(), division=division, enclosure_id=enclosure_id,
                                          threshold_m=threshold_m, distance=distance,
                                          metric_srid=settings.metric_srid)
    click.echo(f"distances: {'walking on the footpath network' if distance == 'walk' else 'straight line'}, "
               f"threshold {threshold_m:g} m")
    for e in report.enclosures:
        c = e.counts()
        click.echo(f"{e.enclosure['name']}: {c['openings']} openings ({c['sealed']} sealed, {c['staffed_checkpoints']} "
                   f"staffed), {c['unguarded']} unguarded, {c['barrier_m']:.0f} m barrier, "
                   f"{c['hours_without_staffed_checkpoint']:g} h/week unstaffed, {c['households_beyond']} of "
                   f"{c['households']} households beyond {threshold_m:g} m")
    click.echo("total: " + ", ".join(f"{k} {v}" for k, v in report.totals.items()))
    if html_path is not None:
        from api.presenters.inspection import coverage_page

        html_path.write_text(coverage_page(report, _CLI_ADMIN), encoding="utf-8")
        click.echo(f"wrote {html_path}")


@inspection.command("siting", help="Which openings of an enclosure to staff: set covering, or --p N for maximal "
                                   "covering.")
@click.argument("enclosure_id", type=int)
@click.option("--threshold", "threshold_m", default=300.0, show_default=True, help="metres")
@click.option("--distance", type=click.Choice(["walk", "straight"]), default="walk", show_default=True)
@click.option("--p", "p", type=int, default=None, help="checkpoints to staff (maximal covering)")
@click.pass_obj
def inspect_siting(settings: Settings, enclosure_id: int, threshold_m: float, distance: str, p: int | None) -> None:
    from spatial.store.enclosure_siting import plan_siting

    with _reported_errors(), _transaction(settings, _CLI_ADMIN, "checkpoint siting") as session:
        r = plan_siting(session, _shell_admin(), enclosure_id, problem="max_cover" if p else "set_cover", p=p,
                        threshold_m=threshold_m, distance=distance, metric_srid=settings.metric_srid)
    s = r.solution
    click.echo(f"{r.enclosure_name}: {len(r.chosen)} openings cover {s.covered_weight} of {s.total_weight} households "
               f"({'proven optimal' if s.optimal else 'not proven optimal'}, {s.solve_s:.2f} s)")
    for o in r.chosen:
        click.echo(f"  opening {o.id} {o.street_name or ''} ({o.checkpoint.name if o.checkpoint else o.status}): "
                   f"nearest for {r.households_nearest[o.id]} households")
    for note in r.notes:
        click.echo("  " + note)


# -- audit -------------------------------------------------------------------------------------------
@main.group(help="The audit log's hash chain (spatial/store/audit_chain.py).")
def audit() -> None:
    pass


@audit.command("seal", help="Chain every committed, not yet sealed audit row now; append the head to the anchor "
                            "file.")
@click.pass_obj
def audit_seal(settings: Settings) -> None:
    from spatial.store.audit_chain import seal

    with _reported_errors():
        engine = open_database(settings)
        try:
            sealed = seal(engine, anchors=settings.anchor_path)
        finally:
            engine.dispose()
    click.echo(f"sealed {sealed.rows:,} rows; head: {sealed.head.line() if sealed.head else '(empty chain)'}")


@audit.command("verify", help="Seal, then recompute the whole chain; compare it with the anchor file and every "
                              "--anchor. Exit 1 if the log was changed, a row was deleted, or rows stay unsealed.")
@click.option("--anchor", "anchors", multiple=True, help="'POSITION HASH' (or POSITION:HASH) kept elsewhere "
                                                         "(repeatable)")
@click.option("--anchor-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="default: settings' audit_anchor_file (data_dir/audit-anchors.txt)")
@click.option("--max-unsealed-age", "max_unsealed_s", type=click.FloatRange(min=0), default=300.0, show_default=True,
              help="seconds a committed row may stay unsealed")
@click.option("--no-seal", is_flag=True, help="only verify (read-only)")
@click.pass_obj
def audit_verify(settings: Settings, anchors: tuple[str, ...], anchor_file: Path | None, max_unsealed_s: float,
                 no_seal: bool) -> None:
    from spatial.store.audit_chain import Anchor, read_anchors, seal, verify

    with _reported_errors():
        kept = [*read_anchors(anchor_file or settings.anchor_path), *(Anchor.parse(a) for a in anchors)]
        engine = open_database(settings)
        try:
            if not no_seal:
                seal(engine, anchors=settings.anchor_path)
            verdict = verify(engine, anchors=kept, max_unsealed_s=max_unsealed_s)
        finally:
            engine.dispose()
    for line in verdict.lines():
        click.secho(line, fg=None if verdict.ok else "red")
    sys.exit(0 if verdict.ok else 1)


# -- backups -------------------------------------------------------------------------------------------
def _progress_once_started(label: str) -> Callable[[int, int], None]:
    """:func:`_progress`, with the bar drawn only once there is progress (not before an early error)."""
    bar: list[Callable[[int, int], None]] = []

    def update(done: int, total: int) -> None:
        if not bar:
            bar.append(_progress(label))
        bar[0](done, total)

    return update


def _backup_secret(settings: Settings, key_file: Path | None) -> bytes | None:
    """The secret of encrypted backups: ``--key-file``, else settings.backup_key_file, else
    settings.backup_passphrase; None if none is given."""
    key_file = key_file or settings.backup_key_file
    if key_file is not None:
        try:
            return key_file.read_bytes()
        except OSError as exc:
            raise click.UsageError(f"cannot read the backup key file {key_file}: {exc.strerror}") from None
    if settings.backup_passphrase is not None:
        return settings.backup_passphrase.get_secret_value().encode()
    return None


KEY_FILE_HELP = "file holding the backup secret (default: GRIDGOV_BACKUP_KEY_FILE, else GRIDGOV_BACKUP_PASSPHRASE)"


@main.command(help="Back up the whole database to FILE (pg_dump custom format: schema, data, sequences, grants), "
                   "readable by its owner only (0600); --encrypt seals it with AES-256-GCM.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--encrypt/--no-encrypt", default=None, help="encrypt (default: when a backup key or passphrase is "
              "configured)")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None, help=KEY_FILE_HELP)
@click.pass_obj
def backup(settings: Settings, path: Path, encrypt: bool | None, key_file: Path | None) -> None:
    from spatial.store.backup import backup_database

    with _reported_errors():
        secret = _backup_secret(settings, key_file)
        if encrypt and secret is None:
            raise click.UsageError("--encrypt needs a secret: --key-file, GRIDGOV_BACKUP_KEY_FILE or "
                                   "GRIDGOV_BACKUP_PASSPHRASE")
        summary = backup_database(database_url(settings), path, progress=_progress_once_started("tables"),
                                  secret=secret if encrypt is not False else None)
    click.echo(summary.line() + ("; encrypted" if secret is not None and encrypt is not False else ""))


@main.command(help="Restore a backup made by 'gridgov backup' into the configured database (created if missing). "
                   "A database that already holds tables is refused unless --force, which drops and recreates it. "
                   "A missing or damaged file changes nothing.")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="drop and recreate a non-empty database first")
@click.option("--key-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help=KEY_FILE_HELP + "; needed for an encrypted backup")
@click.pass_obj
def restore(settings: Settings, path: Path, force: bool, key_file: Path | None) -> None:
    from spatial.store.backup import restore_database

    with _reported_errors():
        url = database_url(settings)
        cluster = embedded_cluster(settings)
        if cluster is not None:  # the superuser restores (extensions need one), then lays the database out
            url = cluster.url(settings.database_name)
        summary = restore_database(url, path, force=force, progress=_progress_once_started("tables"),
                                   secret=_backup_secret(settings, key_file))
    click.echo(summary.line())


# -- department forms (表格抗疫) ------------------------------------------------------------------------------
@main.group(help="Department forms from the population ledger (表格抗疫): saved templates written as XLSX or CSV.")
def form() -> None:
    pass


@form.command("list", help="The saved form templates: name, source, grouping, title and department.")
@click.pass_obj
def form_list(settings: Settings) -> None:
    from spatial.store import forms

    with _reported_errors(), _transaction(settings, _CLI_ADMIN, "list forms") as session:
        for t in forms.list_templates(session):
            click.echo(f"{t.name}\t{t.source}\tper {t.group_by}\t{t.title}\t{t.department or ''}")


@form.command("run", help="Fill the form NAME for a division (12-digit code) or grid (14 digits) and write it to "
                          "--out (.xlsx or .csv, UTF-8 with BOM). Masked unless --reveal --reason (audited).")
@click.argument("name")
@click.option("--division", required=True, help="12-digit district / subdistrict / community code, or a grid code")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--campaign", "campaign_id", type=int, default=None,
              help="progress forms: the campaign (default: the newest open one)")
@click.option("--reveal", is_flag=True, help="full ID and phone numbers and names (audited; needs --reason)")
@click.option("--reason", default=None, help="why the full values are needed (written to the audit log)")
@click.pass_obj
def form_run(settings: Settings, name: str, division: str, out: Path, campaign_id: int | None, reveal: bool,
             reason: str | None) -> None:
    from spatial.io.forms import write_form
    from spatial.store import forms

    with _reported_errors(), _transaction(settings, _CLI_ADMIN, reason or f"form {name}") as session:
        result = forms.run_form(session, _shell_admin(), forms.get_template(session, name), division,
                                reveal=reveal, reason=reason, campaign_id=campaign_id,
                                keys=lambda: personal_keys(settings))
        write_form(result, out)
    click.echo(f"wrote {len(result.rows)} rows of {result.template.title} to {out}"
               + ("" if result.revealed else " (masked)"))
