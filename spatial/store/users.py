"""Users, password login and bearer tokens.

Passwords are hashed with Argon2id (argon2-cffi defaults). Tokens are 256-bit random strings handed to the
client once; only their SHA-256 digest is stored, so a leaked table cannot be replayed. Tokens expire
after ``ttl_s`` seconds and can be revoked.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from spatial.access import TEAM_ROLES, Principal
from spatial.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, TooManyRequests
from spatial.store import audit
from spatial.store.models import AuthToken, Grid, GridAssignment, User
from spatial.store.notify import publish
from spatial.vocab import ROLES

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not a password")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024
MAX_USERNAME_LENGTH = 64
USERNAME = re.compile(rf"[A-Za-z0-9_.-]{{3,{MAX_USERNAME_LENGTH}}}")
"""User names: 3 to 64 ASCII letters, digits, ``_ . -`` (the table's CHECK). Passwords: 10 to 1024 characters.
Login bounds names and passwords by the same maxima, so a longer one is refused before any hashing."""


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def check_username(username: str) -> str:
    """``username`` if it is a valid user name (:data:`USERNAME`), else InvalidInput saying what one is."""
    if not USERNAME.fullmatch(username):
        raise InvalidInput(f"a user name has 3 to {MAX_USERNAME_LENGTH} characters among A-Z, a-z, 0-9, '_', '.' "
                           "and '-'")
    return username


def _audit_account(session: Session, action: str, user: User, *, who: Principal | None, actor: str | None,
                   fields: list[str], result: str, reason: str | None) -> None:
    """The audit row of a change to an account (``object_type`` user, ``object_id`` its name): by ``who``, else
    ``actor``, else the transaction's actor (``gridgov.actor``, :func:`spatial.store.engine.acting_as`, or the
    database user)."""
    if who is None and actor is None:
        actor = session.scalar(text("SELECT gridgov_actor()"))
    audit.record(session, who, action, actor=actor, object_type="user", object_id=user.username, fields=fields,
                 purpose=reason, result=result)


def _grid_codes(session: Session, user: User) -> list[str]:
    return list(session.scalars(select(Grid.code).join(GridAssignment, GridAssignment.grid_id == Grid.id)
                                .where(GridAssignment.user_id == user.id).order_by(Grid.code)))


def create_user(session: Session, username: str, password: str, role: str, *, scope_code: str | None = None,
                display_name: str | None = None, grid_codes: tuple[str, ...] = (), who: Principal | None = None,
                actor: str | None = None, reason: str | None = None, department: str | None = None) -> User:
    """Create a user, optionally assigned to grids (by grid code), and audit it (``user_create``, by ``who`` or
    ``actor``: see :func:`_audit_account`). ``department``: the department's name, required for (and only for)
    the role ``department``. InvalidInput for a bad name, role or password; Conflict if the name is taken."""
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    department = (department or "").strip() or None
    if (role == "department") != (department is not None) or (department and len(department) > 64):
        raise InvalidInput("a department's account names its department (1 to 64 characters); other roles none",
                           code="user.department", field="department")
    check_username(username)
    user = User(username=username, password_hash=hash_password(password), role=role, scope_code=scope_code,
                display_name=display_name, department=department)
    try:
        with session.begin_nested():
            session.add(user)
            session.flush()
    except IntegrityError as exc:
        raise Conflict(f"cannot create user {username!r}: the name is taken or the scope code is unknown") from exc
    assign_grids(session, user, grid_codes)
    _audit_account(session, "user_create", user, who=who, actor=actor, reason=reason,
                   fields=["role", "scope_code", "display_name", "grids", "password"],
                   result=f"{role}, scope {scope_code or '-'}, grids {', '.join(sorted(grid_codes)) or '-'}")
    return user


def change_user(session: Session, username: str, *, role: str | None = None, scope_code: str | None = None,
                display_name: str | None = None, grid_codes: tuple[str, ...] | None = None,
                active: bool | None = None, password: str | None = None, who: Principal | None = None,
                actor: str | None = None, reason: str | None = None) -> User:
    """Change what is given of a user: ``role``, ``scope_code`` ('' for none), ``display_name``, ``grid_codes``
    (replacing the user's grids; ``()`` for none), ``active`` and ``password``. Each kind of change that changes
    something is audited (by ``who`` or ``actor``, :func:`_audit_account`; never a password): ``user_change``
    (role, scope, display name: old → new), ``assign`` (grids), ``user_deactivate``/``user_activate``,
    ``user_password``. Deactivating or setting a password revokes the user's tokens; every server process then
    forgets the callers it remembers, as it does after a change of role, scope or grids. NotFound for an unknown
    user (the name is not echoed if it is not a user name)."""
    user = session.scalar(select(User).where(User.username == username).with_for_update())
    if user is None:
        raise NotFound(f"no user {username}" if USERNAME.fullmatch(username) else "no such user")
    if role is not None and role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    if role is not None and (role == "department") != (user.department is not None):
        raise InvalidInput("a department's account is created as one (with its department's name); other roles "
                           "cannot become or stop being one", code="user.department", field="role")
    account = {"who": who, "actor": actor, "reason": reason}
    changes = [(name, getattr(user, name), value or None)
               for name, value in (("role", role), ("scope_code", scope_code), ("display_name", display_name))
               if value is not None and getattr(user, name) != (value or None)]
    if changes:
        for name, _, value in changes:
            setattr(user, name, value)
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError as exc:
            raise NotFound(f"no division with code {scope_code}") from exc
        _audit_account(session, "user_change", user, fields=[c[0] for c in changes], **account,
                       result="; ".join(f"{name} {old or '-'} → {new or '-'}" for name, old, new in changes))
    changed = bool(changes)
    if grid_codes is not None and sorted(set(grid_codes)) != (before := _grid_codes(session, user)):
        session.execute(delete(GridAssignment).where(GridAssignment.user_id == user.id))
        assign_grids(session, user, tuple(sorted(set(grid_codes))))
        _audit_account(session, "assign", user, fields=["grids"], **account,
                       result=f"grids {', '.join(before) or '-'} → {', '.join(sorted(set(grid_codes))) or '-'}")
        changed = True
    if active is not None and active != user.active:
        user.active = active
        _audit_account(session, "user_activate" if active else "user_deactivate", user, fields=["active"],
                       result="active" if active else "deactivated, tokens revoked", **account)
        changed = True
    if password is not None:
        user.password_hash = hash_password(password)
        _audit_account(session, "user_password", user, fields=["password"], result="password set, tokens revoked",
                       **account)
        changed = True
    if not user.active or password is not None:
        session.execute(update(AuthToken).where(AuthToken.user_id == user.id, AuthToken.revoked_at.is_(None))
                        .values(revoked_at=datetime.now(UTC)))
    session.flush()
    if changed:
        principals_changed(session)
    return user


PRINCIPALS_CHANNEL = "gridgov_tokens"
"""NOTIFY channel of changes to who callers are: ``{"digest": <token SHA-256 hex>}`` for a revoked token,
``{"all": true}`` when grid assignments changed; each server process forgets the callers it remembers
(``api.deps.PrincipalCache``)."""


def principals_changed(session: Session) -> None:
    """Every server process forgets the callers it remembers when ``session`` commits (their grids changed)."""
    publish(session, PRINCIPALS_CHANNEL, {"all": True})


def assign_grids(session: Session, user: User, grid_codes: tuple[str, ...], duty: str = "worker") -> None:
    """Add grid assignments, not audited: accounts change through :func:`create_user` and :func:`change_user`,
    which audit (this is their step, and the test factories')."""
    grids = session.scalars(select(Grid).where(Grid.code.in_(grid_codes))).all()
    missing = set(grid_codes) - {g.code for g in grids}
    if missing:
        raise NotFound(f"no grid with code {', '.join(sorted(missing))}")
    session.add_all(GridAssignment(user_id=user.id, grid_id=g.id, duty=duty) for g in grids)
    session.flush()
    if grids:
        principals_changed(session)


def authenticate(session: Session, username: str, password: str) -> User:
    """The active user with this name and password; NotAuthenticated otherwise (same message either way)."""
    user = session.scalar(select(User).where(User.username == username, User.active))
    try:
        _hasher.verify(user.password_hash if user else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        user = None
    if user is None:
        raise NotAuthenticated("wrong user name or password")
    return user


WRONG_PASSWORD = "refused 401"
"""The result prefix of a failed login's audit row (a wrong name or password; not a login refused by a limit)."""


def refuse_if_throttled(session: Session, username: str, client_addr: str | None, *, max_failures: int,
                        max_per_address: int, max_per_name: int, window_s: int) -> None:
    """TooManyRequests when, in the last ``window_s`` seconds, this name failed ``max_failures`` times from
    ``client_addr``, or this address ``max_per_address`` times (any names), or this name ``max_per_name`` times
    (any addresses). Checked before the password, so guessing cannot go on behind the limit.

    Failures are the audit log's ``login`` rows refused with 401, so limits hold across processes and restarts;
    logins refused by a limit (429) do not count, so hammering a locked pair neither prolongs its lock nor
    pushes the name to its ceiling. A stranger who fails as a grid worker locks out only their own address for
    that name: the worker still logs in from theirs. Only ``max_per_name`` (a ceiling against guessing
    from many addresses) locks a name out everywhere, and takes ``max_per_name / max_failures`` addresses.
    Without an address, the name's failures count as the pair's."""
    def failures(**where: str | None) -> int:
        return audit.count_recent(session, "login", window_s, result=WRONG_PASSWORD, **where)

    if (failures(object_id=username, client_addr=client_addr) >= max_failures
            or client_addr is not None and failures(client_addr=client_addr) >= max_per_address
            or failures(object_id=username) >= max_per_name):
        raise TooManyRequests(f"too many failed logins; wait {window_s // 60} minutes and try again, or ask an "
                              "administrator to reset the password", retry_after_s=window_s)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def issue_token(session: Session, user: User, ttl_s: int) -> tuple[str, datetime]:
    """A new bearer token for ``user`` and its expiry time (UTC)."""
    token = secrets.token_urlsafe(32)
    expires = datetime.now(UTC) + timedelta(seconds=ttl_s)
    session.add(AuthToken(token_hash=_digest(token), user_id=user.id, expires_at=expires))
    session.flush()
    return token, expires


def revoke_token(session: Session, token: str) -> None:
    session.execute(update(AuthToken).where(AuthToken.token_hash == _digest(token)).values(revoked_at=datetime.now(UTC)))


def principal_for_token(session: Session, token: str, client_addr: str | None = None) -> Principal:
    """The caller behind a bearer token; NotAuthenticated if it is unknown, expired, revoked or the user inactive."""
    row = session.execute(
        select(User, AuthToken.expires_at)
        .join(AuthToken, AuthToken.user_id == User.id)
        .where(AuthToken.token_hash == _digest(token), AuthToken.revoked_at.is_(None), User.active)
    ).one_or_none()
    if row is None or row.expires_at <= datetime.now(UTC):
        raise NotAuthenticated("the token is unknown, expired or revoked: log in again")
    return principal_for_user(session, row.User, client_addr)


def principal_for_user(session: Session, user: User, client_addr: str | None = None) -> Principal:
    """The caller ``user`` is: their grids (a grid worker's grid assignments; a team role's current team
    assignments, :func:`spatial.store.team.current_targets`) and, for building and unit heads, their buildings."""
    from spatial.store import team

    building_ids: frozenset[int] = frozenset()
    if user.role in TEAM_ROLES:
        grid_ids, building_ids = team.current_targets(session, user.id)
    else:
        grid_ids = frozenset(session.scalars(select(GridAssignment.grid_id).where(GridAssignment.user_id == user.id)))
    return Principal(user_id=user.id, username=user.username, role=user.role, scope_code=user.scope_code,
                     grid_ids=grid_ids, client_addr=client_addr, department=user.department,
                     building_ids=building_ids)
