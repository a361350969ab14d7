"""Test fixtures: a real PostGIS + pgRouting, started by the tests themselves.

* ``GRIDGOV_TEST_DATABASE_URL`` set: tests use that server (it must allow CREATE DATABASE and extensions).
* otherwise: an embedded cluster in a temporary folder, started once per test session.

A template database is migrated once; each test that needs a database gets either
``db`` — a Session inside a transaction that is rolled back afterwards (fast, the default), or
``fresh_db_url`` — a new database copied from the template, for code that commits (CLI, API servers).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from spatial.store import migrate
from spatial.store.cluster import LocalCluster
from spatial.store.engine import make_engine, normalize_url

SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
"""``../shared/data`` beside the checkout, or ``$SHARED_DATA_DIR`` (a worktree elsewhere)."""
TEMPLATE = "gridgov_test_template"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests using it are skipped when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


class _Server:
    """Creates and drops databases on the test server, embedded or external.

    On the embedded cluster, databases are laid out as ``gridgov db start`` lays them out (the superuser creates
    them and their extensions, the schema owner ``gridgov_owner`` owns them, the audit belongs to
    ``gridgov_audit``): :meth:`create` returns the owner's URL, :meth:`url` the superuser's."""

    def __init__(self, admin_url: str, cluster: LocalCluster | None) -> None:
        self.admin_url = admin_url
        self.cluster = cluster
        self.admin = make_engine(admin_url, pool_size=1).execution_options(isolation_level="AUTOCOMMIT")

    def url(self, dbname: str) -> str:
        """The administrator's (superuser's) URL of ``dbname``."""
        return make_url(self.admin_url).set(database=dbname).render_as_string(hide_password=False)

    def create(self, dbname: str, template: str | None = None) -> str:
        """A new database (dropped first if it exists); the URL the application uses on it."""
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
            if self.cluster is None:
                conn.execute(text(f'CREATE DATABASE "{dbname}"' + (f' TEMPLATE "{template}"' if template else "")))
        if self.cluster is None:
            return self.url(dbname)
        self.cluster.ensure_database(dbname, template)
        return self.cluster.owner_url(dbname)

    def migration_window(self, url: str):
        """The block may change the audit tables' definitions (a migration); see LocalCluster.migration_window."""
        return self.cluster.migration_window(make_url(url).database) if self.cluster else nullcontext()

    def drop(self, dbname: str) -> None:
        with self.admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[_Server]:
    external = os.environ.get("GRIDGOV_TEST_DATABASE_URL")
    if external:
        yield _Server(normalize_url(external), None)
        return
    folder = Path(tempfile.mkdtemp(prefix="gridgov-test-"))
    cluster = LocalCluster(folder)
    cluster.start()
    try:
        yield _Server(cluster.url("postgres"), cluster)
    finally:
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_url(pg_server: _Server) -> str:
    url = pg_server.create(TEMPLATE)
    engine = make_engine(url, pool_size=1)
    with pg_server.migration_window(url):
        migrate.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def engine(pg_server: _Server, template_url: str) -> Iterator[Engine]:
    """One migrated database shared by the rollback tests."""
    url = pg_server.create("gridgov_test", template=TEMPLATE)
    eng = make_engine(url, pool_size=4)
    yield eng
    eng.dispose()


@contextmanager
def rolled_back(engine: Engine) -> Iterator[Session]:
    """A Session whose every change, commits included, is rolled back when the block ends."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A Session whose every change, commits included, is rolled back at the end of the test."""
    with rolled_back(engine) as session:
        yield session


@pytest.fixture(scope="module")
def demo_module(engine: Engine) -> Iterator[Session]:
    """The demo neighbourhood loaded once per test module (``session.info["demo_counts"]`` has what
    ``load_demo`` returned), rolled back after the module. While it is open its rows are locked: a test of
    the same module must not insert the same division codes through another connection."""
    from fixtures.demo import load_demo

    with rolled_back(engine) as session:
        session.info["demo_counts"] = load_demo(session)
        yield session


@pytest.fixture
def demo(demo_module: Session) -> Iterator[Session]:
    """The module's demo session; each test's changes are rolled back to a savepoint."""
    savepoint = demo_module.begin_nested()
    yield demo_module
    savepoint.rollback()


@pytest.fixture
def fresh_db_url(pg_server: _Server, template_url: str) -> Iterator[str]:
    """A new migrated database for this test alone (for code that commits or opens its own connections)."""
    name = "gridgov_t_" + uuid.uuid4().hex[:10]
    url = pg_server.create(name, template=TEMPLATE)
    yield url
    pg_server.drop(name)


@pytest.fixture
def app_env(fresh_db_url: str, tmp_path: Path):
    """(FastAPI TestClient, sessionmaker) on a fresh database; data seeded through the sessionmaker is
    committed and visible to the app. Both connect with the service's restricted database role."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from spatial.settings import Settings
    from spatial.store.engine import make_sessionmaker

    from spatial.store.privileges import APP_ROLE

    engine = make_engine(fresh_db_url, pool_size=4, role=APP_ROLE)  # as the service connects
    settings = Settings(database_url=fresh_db_url, data_dir=tmp_path)
    with TestClient(create_app(settings, engine=engine)) as client:
        yield client, make_sessionmaker(engine)
    engine.dispose()


def login(client, username: str, password: str) -> dict[str, str]:
    """Authorization header for a user, through the real login endpoint."""
    response = client.post("/api/auth/token", data={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": "Bearer " + response.json()["access_token"]}


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_server(app_env):
    """The app served by a real uvicorn on a free loopback port: (base URL, sessionmaker)."""
    import socket
    import threading
    import time

    import uvicorn

    from gridgov.cli import uvicorn_options

    client, sessions = app_env
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client.app.state.settings = client.app.state.settings.model_copy(update={"host": "127.0.0.1", "port": port})
    options = {**uvicorn_options(client.app.state.settings), "log_level": "warning"}  # as gridgov serve runs it
    server = uvicorn.Server(uvicorn.Config(client.app, host="127.0.0.1", port=port, lifespan="off", **options))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", sessions
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    """Debian's Chromium driven by Playwright (no browser download)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (./dev.sh test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


REPORT_CSP_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline"} (${e.sourceFile}:${e.lineNumber})`));"""


def watch_errors(context) -> list[str]:
    """Collect the errors of every page of a browser ``context`` (call before opening pages): uncaught exceptions,
    and Content-Security-Policy violations (the ``securitypolicyviolation`` event and Chromium's console report),
    so a page test fails if the policy blocks anything the page does."""
    errors: list[str] = []
    context.add_init_script(REPORT_CSP_VIOLATIONS)

    def console(message) -> None:
        if message.type == "error" and ("CSP violation" in message.text or "Content Security Policy" in message.text):
            errors.append(message.text)

    def watch(page) -> None:
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", console)

    context.on("page", watch)
    return errors


def open_logged_in(browser, url: str, username: str, password: str, **context_options):
    """A new browser context on ``url``, logged in through the page's own login dialog and ready
    (``body[data-ready]``). Returns (context, page, errors): page errors and CSP violations are collected for the
    test to check (:func:`watch_errors`)."""
    context = browser.new_context(**context_options)
    errors = watch_errors(context)
    page = context.new_page()
    page.goto(url)
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login button[type=submit]")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    return context, page, errors


def go_offline(page) -> None:
    """Cut the browser context of ``page`` off the network and wait until the page itself knows
    (``navigator.onLine`` false): Chromium applies the emulation asynchronously, and a request sent in between may
    still reach the server while its answer is lost, which no page test means to check."""
    page.context.set_offline(True)
    page.wait_for_function("() => !navigator.onLine")
