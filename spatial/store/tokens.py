"""Personal access tokens: read-only credentials for GIS clients that can send only HTTP Basic (QGIS 3.22).

A user makes a token (a name, a lifetime of :data:`MIN_DAYS` to :data:`MAX_DAYS` days, :data:`DEFAULT_DAYS` by
default) and pastes its secret into the client as the *password* of HTTP Basic, with their own user name. The
secret (``ggpat_`` + 256 random bits, URL-safe base64) is shown once; only its SHA-256 is stored (a random
256-bit secret needs no slow hash, so checking one costs a lookup, not an Argon2 verification per tile).

Rules (decision 0011):

* **Read only.** The one scope is :data:`READ`: a token is accepted on the read endpoints of the OGC API,
  the tiles and the exports, nowhere else (the HTTP layer decides where; :mod:`api.deps`). It acts with its
  owner's role and area, as they are at the time of each request.
* **Never a password.** Basic with the account's login password is refused: only a token's secret is checked.
* A token stops working when it expires, is revoked, or its owner is deactivated (it works again if the owner
  is reactivated before it expires; a revoked token never does). A user holds at most :data:`MAX_ACTIVE` live
  tokens.
* **Audited**: ``token_create`` and ``token_revoke`` (object ``access_token`` / its id), and ``token_use`` at
  most once per :data:`USE_RECORD_S` seconds per token (with ``last_used_at``), so a QGIS session loading
  hundreds of tiles leaves a trace without flooding the log. A failed Basic login is a failed login (the
  login throttle counts it): :mod:`spatial.store.users`.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotAuthenticated, NotFound, OutOfScope
from spatial.store import audit
from spatial.store.models import AccessToken, User
from spatial.store.notify import publish
from spatial.store.users import PRINCIPALS_CHANNEL, USERNAME, principal_for_user

READ = "read"
SCOPES = (READ,)
"""The scopes a token may have: only ``read`` (OGC API, tiles and exports; no write ever)."""
MIN_DAYS, DEFAULT_DAYS, MAX_DAYS = 1, 90, 365
MAX_NAME_LENGTH = 64
MAX_ACTIVE = 20
USE_RECORD_S = 60
PREFIX = "ggpat_"
SECRET_LENGTH = len(PREFIX) + 43
HINT_LENGTH = len(PREFIX) + 4
REFUSED = ("HTTP Basic takes a personal access token as the password, never your login password; this one is "
           "unknown, expired or revoked, or not the user's (make one on /tokens or with 'gridgov token create')")


def secret_digest(secret: str) -> bytes:
    """The SHA-256 of a secret, as stored (``secret_hash``)."""
    return hashlib.sha256(secret.encode()).digest()


def check_name(name: str) -> str:
    """``name`` stripped, if it has 1 to :data:`MAX_NAME_LENGTH` characters; else InvalidInput."""
    name = name.strip()
    if not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidInput(f"a token's name has 1 to {MAX_NAME_LENGTH} characters (e.g. 'QGIS office PC')")
    return name


def check_days(days: int) -> int:
    if not MIN_DAYS <= days <= MAX_DAYS:
        raise InvalidInput(f"a token lives {MIN_DAYS} to {MAX_DAYS} days, not {days}")
    return days


def check_scopes(scopes: tuple[str, ...] | list[str]) -> list[str]:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown or not scopes:
        raise InvalidInput(f"tokens are read-only: the only scope is {READ!r}"
                           + (f", not {', '.join(map(repr, unknown))}" if unknown else ""))
    return sorted(set(scopes))


@dataclass(frozen=True)
class TokenInfo:
    """What is shown of a token (never its secret, which only :func:`create_token` returns)."""

    id: int
    username: str
    name: str
    hint: str
    scopes: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None

    @property
    def state(self) -> str:
        """'active', 'expired' or 'revoked'."""
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at <= datetime.now(UTC) else "active"


def _info(token: AccessToken, username: str) -> TokenInfo:
    return TokenInfo(id=token.id, username=username, name=token.name, hint=token.hint, scopes=tuple(token.scopes),
                     created_at=token.created_at, expires_at=token.expires_at, last_used_at=token.last_used_at,
                     revoked_at=token.revoked_at)


def _user(session: Session, username: str, *, lock: bool = False) -> User:
    """The user of that name; NotFound (the name is not echoed unless it is a user name)."""
    query = select(User).where(User.username == username)
    user = session.scalar(query.with_for_update() if lock else query)
    if user is None:
        raise NotFound(f"no user {username}" if USERNAME.fullmatch(username) else "no such user")
    return user


def create_token(session: Session, username: str, name: str, *, days: int = DEFAULT_DAYS,
                 scopes: tuple[str, ...] = SCOPES, who: Principal | None = None,
                 actor: str | None = None) -> tuple[TokenInfo, str]:
    """A new token of ``username`` and its secret (shown once). Audited ``token_create`` by ``who`` (or
    ``actor``). InvalidInput for a bad name, lifetime or scope; NotFound for an unknown user; Forbidden for a
    deactivated one; Conflict beyond :data:`MAX_ACTIVE` live tokens."""
    name, days, scopes_ = check_name(name), check_days(days), check_scopes(scopes)
    user = _user(session, username, lock=True)  # one creation at a time per user: the count below holds
    if not user.active:
        raise Forbidden(f"{username} is deactivated: no new tokens")
    live = session.scalar(select(func.count()).select_from(AccessToken).where(
        AccessToken.user_id == user.id, AccessToken.revoked_at.is_(None), AccessToken.expires_at > func.now()))
    if live >= MAX_ACTIVE:
        raise Conflict(f"{username} has {live} live tokens (at most {MAX_ACTIVE}): revoke one first")
    secret = PREFIX + secrets.token_urlsafe(32)
    now = session.scalar(select(func.now()))
    token = AccessToken(user_id=user.id, name=name, secret_hash=secret_digest(secret), hint=secret[:HINT_LENGTH],
                        scopes=scopes_, created_at=now, expires_at=now + timedelta(days=days))
    session.add(token)
    session.flush()
    audit.record(session, who, "token_create", actor=actor, object_type="access_token", object_id=token.id,
                 result=f"{username}: {name!r}, {', '.join(scopes_)}, {days} days")
    return _info(token, username), secret


def list_tokens(session: Session, username: str | None = None) -> list[TokenInfo]:
    """The tokens of ``username`` (None: everyone's), newest first, revoked and expired ones included."""
    query = select(AccessToken, User.username).join(User, User.id == AccessToken.user_id)
    if username is not None:
        query = query.where(User.id == _user(session, username).id)
    rows = session.execute(query.order_by(AccessToken.created_at.desc(), AccessToken.id.desc())).all()
    return [_info(token, owner) for token, owner in rows]


def revoke_token(session: Session, token_id: int, *, who: Principal | None = None, actor: str | None = None,
                 owner: str | None = None) -> tuple[TokenInfo, bytes]:
    """Revoke a token (audited ``token_revoke``); returns it and its secret's digest. Every server process
    forgets the token when ``session`` commits (:data:`~spatial.store.users.PRINCIPALS_CHANNEL`).
    With ``owner``, only a token of that user (else OutOfScope: a 404 as for an unknown id, so whether another's
    exists stays unsaid, and audited as a refusal). Revoking a revoked token changes nothing and is not audited
    again."""
    query = select(AccessToken, User.username).join(User, User.id == AccessToken.user_id).where(
        AccessToken.id == token_id)
    if owner is not None:
        query = query.where(User.username == owner)
    row = session.execute(query.with_for_update(of=AccessToken)).one_or_none()
    if row is None:
        raise (OutOfScope(f"no token {token_id} of yours") if owner is not None else NotFound(f"no token {token_id}"))
    token, username = row
    if token.revoked_at is None:
        token.revoked_at = session.scalar(select(func.now()))
        session.flush()
        audit.record(session, who, "token_revoke", actor=actor, object_type="access_token", object_id=token.id,
                     result=f"{username}: {token.name!r}")
        publish(session, PRINCIPALS_CHANNEL, {"digest": token.secret_hash.hex()})
    return _info(token, username), token.secret_hash


def refuse_token(who: Principal, what: str) -> None:
    """Forbidden if ``who`` came with an access token: ``what`` (a reveal of households) needs a login."""
    if who.token_id is not None:
        raise Forbidden(f"{what} needs a login (a bearer token from POST /api/auth/token), not an access token")


def principal_for_secret(session: Session, username: str, secret: str, client_addr: str | None = None) -> Principal:
    """The caller behind ``username`` + a token's ``secret`` (HTTP Basic), with :attr:`Principal.token_id`
    set; NotAuthenticated (:data:`REFUSED`) if the secret is no live token of that active user — a login
    password included, which is never checked here. Records the use (``last_used_at`` and a ``token_use``
    audit row) at most once per :data:`USE_RECORD_S` seconds."""
    if not secret.startswith(PREFIX) or len(secret) != SECRET_LENGTH:
        raise NotAuthenticated(REFUSED)
    row = session.execute(
        select(User, AccessToken.id)
        .join(AccessToken, AccessToken.user_id == User.id)
        .where(AccessToken.secret_hash == secret_digest(secret), AccessToken.revoked_at.is_(None),
               AccessToken.expires_at > func.now(), User.active, User.username == username)
    ).one_or_none()
    if row is None:
        raise NotAuthenticated(REFUSED)
    user, token_id = row
    who = replace(principal_for_user(session, user, client_addr), token_id=token_id)
    recorded = session.scalar(
        update(AccessToken).where(AccessToken.id == token_id, or_(
            AccessToken.last_used_at.is_(None),
            AccessToken.last_used_at < func.now() - timedelta(seconds=USE_RECORD_S)))
        .values(last_used_at=func.now()).returning(AccessToken.id))
    if recorded is not None:
        audit.record(session, who, "token_use", object_type="access_token", object_id=token_id)
    return who
