"""Login limits: a stranger cannot lock a grid worker out from another address, guessing from many addresses
meets a per-name ceiling, and an oversized name is refused before any hashing or audit row."""

from __future__ import annotations


import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text

from spatial.store import users
from tests.factories import users_with_grids

PASSWORD = "correct horse battery"
WRONG = "wrong password!"


@pytest.fixture
def env(app_env):
    """The app with a grid worker and a planner, and a client per address: A (a stranger's), B (the worker's)."""
    client, sessions = app_env
    with sessions.begin() as s:
        users_with_grids(s, (("worker", "grid_worker", None, None), ("planner1", "planner", None, None)),
                         users.hash_password(PASSWORD))
    from_a, from_b = (TestClient(client.app, client=(host, 50000)) for host in ("10.0.0.1", "10.0.0.2"))
    return client, sessions, from_a, from_b


def login(client, name, password=PASSWORD):
    return client.post("/api/auth/token", data={"username": name, "password": password})


def settings_of(client, **changes):
    client.app.state.settings = client.app.state.settings.model_copy(update=changes)


def test_a_stranger_locks_out_only_their_own_address(env):
    client, sessions, from_a, from_b = env
    for _ in range(5):
        assert login(from_a, "worker", WRONG).status_code == 401
    assert login(from_a, "worker").status_code == 429  # the right password too, from A
    for _ in range(10):  # hammering a locked pair does not count as failures: no creeping toward the ceiling
        assert login(from_a, "worker", WRONG).status_code == 429
    assert login(from_b, "worker").status_code == 200  # the worker, from their own address
    assert login(from_a, "planner1").status_code == 200  # A may still log in as someone else
    with sessions() as s:
        rows = s.execute(text("SELECT client_addr, left(result, 11) AS r, count(*) AS n FROM audit_log "
                              "WHERE action = 'login' AND object_id = 'worker' GROUP BY 1, 2 ORDER BY 1, 2")).all()
    assert [tuple(r) for r in rows] == [("10.0.0.1", "refused 401", 5), ("10.0.0.1", "refused 429", 11),
                                        ("10.0.0.2", "ok", 1)]


def test_an_address_failing_as_many_names_is_refused_for_every_name(env):
    client, _, from_a, from_b = env
    settings_of(client, login_max_failures_per_address=4)
    for name in ("a1", "a2", "a3", "a4"):
        assert login(from_a, name, WRONG).status_code == 401
    assert login(from_a, "planner1").status_code == 429
    assert login(from_b, "planner1").status_code == 200


def test_guessing_one_name_from_many_addresses_meets_a_ceiling(env):
    client, _, _, _ = env
    settings_of(client, login_max_failures_per_name=6)
    for host in ("10.1.0.1", "10.1.0.2", "10.1.0.3"):
        guesser = TestClient(client.app, client=(host, 50000))
        assert [login(guesser, "worker", WRONG).status_code for _ in range(2)] == [401, 401]
    assert login(TestClient(client.app, client=("10.1.0.9", 50000)), "worker").status_code == 429
    assert login(client, "planner1").status_code == 200  # only that name


def test_an_oversized_name_is_refused_before_hashing_and_leaves_no_row(env, monkeypatch):
    client, sessions, from_a, _ = env

    class NoHashing:
        def __getattr__(self, name):
            raise AssertionError(f"an oversized login reached the password hasher ({name})")

    with monkeypatch.context() as m:  # refused before any Argon2 work (not judged by a clock)
        m.setattr(users, "_hasher", NoHashing())
        response = login(from_a, "w" * 200_000, WRONG)
        assert response.status_code == 422 and "username" in response.json()["detail"]
        assert login(from_a, "worker", "x" * 1025).status_code == 422
    assert len(response.content) < 2000  # the name is not echoed
    assert login(from_a, "", WRONG).status_code == 422
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM audit_log")) == 0
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    form = next(v for k, v in schema.items() if k.startswith("Body_login"))
    assert form["properties"]["username"]["maxLength"] == users.MAX_USERNAME_LENGTH


def test_user_names_are_bounded_at_creation_too(db):
    from spatial.errors import InvalidInput

    for name in ("u" * (users.MAX_USERNAME_LENGTH + 1), "", "ab", " padded", "tab\there", "王芳"):
        with pytest.raises(InvalidInput, match="user name"):
            users.create_user(db, name, PASSWORD, "viewer")
    assert users.create_user(db, "u" * users.MAX_USERNAME_LENGTH, PASSWORD, "viewer").id
