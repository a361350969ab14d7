"""Typed dependencies: the database session of a request and the authenticated caller.

Two rules of trust live here, so that no endpoint can forget them:

* **Refusals are audited.** A request refused with 403 (role or scope), 404 for an object scope hides
  (:class:`~spatial.errors.OutOfScope`) or 429 (rate limit), and a failed login, rolls its transaction back;
  :func:`get_session` then writes the refusal to the audit log in a transaction of its own. An endpoint whose
  every attempt must leave a row (imports) marks its request with :func:`audit_refusals_as`: then any refusal
  of it (every 4xx domain error: 413, 422…) is audited, under the endpoint's own action.
* **Who is calling** is looked up once per token and remembered for :data:`PRINCIPAL_TTL_S` seconds
  (:class:`PrincipalCache`, shared with the tile router). Logging out forgets the token at once in this
  process and, through :data:`TOKENS_CHANNEL` (:mod:`spatial.store.notify`), in every other server process
  on commit; so does a change of grid assignments, a deactivation or a new password
  (:func:`spatial.store.users.change_user`: every caller is forgotten). A user changed directly in the database,
  bypassing it, stays usable for at most that long.

**Personal access tokens** (:mod:`spatial.store.tokens`, decision 0011) are accepted only by :data:`ReaderUser`:
the read endpoints of the OGC API, the tiles and the exports, as the *password* of HTTP Basic (with the owner's
user name; QGIS 3.22 can send nothing else). A failed Basic login is a failed login: the login throttle counts
it and refuses beyond it (429), and it is audited as one. Callers behind a token are remembered like those
behind a login, in a cache of their own (so a token's secret never passes as a bearer token), forgotten on the
same notifications. Everywhere else Basic is refused with a message saying where it works.
"""

from __future__ import annotations

import binascii
import hashlib
import time
from base64 import b64decode
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBasic, HTTPBasicCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.errors import status_of
from api.geojson import CrsParam
from api.replicas import note_write, write_mark
from spatial.access import Principal
from spatial.errors import Forbidden, GridgovError, NotAuthenticated, OutOfScope, TooManyRequests
from spatial.geometry.crs import CoordSys, parse_crs
from spatial.settings import Settings
from spatial.store import audit, tokens, users
from spatial.store.notify import publish
from spatial.store.users import PRINCIPALS_CHANNEL, principal_for_token

T = TypeVar("T")
bearer_scheme = HTTPBearer(auto_error=False, description="token from POST /api/auth/token")
PRINCIPAL_TTL_S = 10.0
LOGIN_FIRST = "log in first: send 'Authorization: Bearer <token>' (POST /api/auth/token)"
TOKEN_ENDPOINTS = "the read endpoints of /ogc, /tiles and /api/export"
BASIC_ELSEWHERE = (f"HTTP Basic with a personal access token is accepted only on {TOKEN_ENDPOINTS}; here, "
                   + LOGIN_FIRST)
LOGIN_OR_TOKEN = (LOGIN_FIRST + ", or HTTP Basic with your user name and a personal access token as the password "
                  "(not your login password; make one on /tokens)")
BASIC_CHALLENGE = 'Basic realm="gridgov"'


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def audit_refusals_as(request: Request, action: str, **entry: Any) -> None:
    """Audit any refusal of this request (a 4xx domain error) as ``action`` with ``entry`` (``object_type``,
    ``object_id``, ``purpose`` as for :func:`spatial.store.audit.record`); call it first thing in the endpoint."""
    request.state.refusal_audit = (action, entry)


def _marked(request: Request, exc: BaseException) -> tuple[str, dict] | None:
    marked = getattr(request.state, "refusal_audit", None)
    return marked if marked is not None and isinstance(exc, GridgovError) and status_of(exc) < 500 else None


def _audit_refusal(request: Request, exc: Exception) -> None:
    """Write the refusal of this request to the audit log (its own transaction): the caller if known,
    the endpoint (method and route template), the household it named (so a refused look at a household is found
    by a search for it) and the message they got. A refusal already audited where it happened (a failed Basic
    login, :func:`token_caller`) is not written twice."""
    if getattr(request.state, "refusal_audited", False):
        return
    marked = _marked(request, exc)
    if marked is not None:
        action, entry = marked
        audit.record_apart(request.app.state.sessions, getattr(request.state, "principal", None), action,
                           result=f"refused {status_of(exc)}: {exc}", client_addr=client_address(request), **entry)
        return
    login_name = getattr(request.state, "login_name", None)
    if isinstance(exc, NotAuthenticated) and login_name is None:
        return  # a request without a valid token: nobody to attribute it to, nothing was shown
    result = f"refused {status_of(exc)}: {exc}"
    if login_name is not None:
        audit.record_apart(request.app.state.sessions, None, "login", object_type="user", object_id=login_name,
                           result=result, client_addr=client_address(request))
        return
    route = request.scope.get("route")
    household = str(request.path_params.get("household_id", ""))
    audit.record_apart(request.app.state.sessions, getattr(request.state, "principal", None), "refused",
                       object_type="endpoint", object_id=f"{request.method} {getattr(route, 'path', request.url.path)}",
                       households=[int(household)] if household.isdigit() and len(household) < 19 else [],
                       fields=sorted(request.path_params), result=result, client_addr=client_address(request))


_REFUSALS = (Forbidden, OutOfScope, TooManyRequests, NotAuthenticated)


async def audit_refused(request: Request, exc: BaseException) -> None:
    """Audit ``exc`` if it is a refusal of ``request`` (the rule of the module docstring); for endpoints that
    handle their own errors without :data:`SessionDep` (tiles)."""
    if isinstance(exc, _REFUSALS) or _marked(request, exc) is not None:
        await run_in_threadpool(_audit_refusal, request, exc)


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One transaction per request, on the primary: committed when the endpoint returns, rolled back if it raises.

    Runs with ``scope="function"`` so the commit happens before the response is sent: a client that sees
    a 2xx knows its change is stored. Refusals are audited after the rollback (module docstring). With read
    replicas, a commit that wrote is remembered for the caller's next reads (:mod:`api.replicas`).

    Opening a session does no I/O (it connects on first use), so this runs on the event loop; the end of the
    transaction (commit or rollback, and returning the connection to the pool) is one call in a worker thread.
    """
    async with _request_transaction(request, request.app.state.sessions()) as session:
        yield session


async def read_session(request: Request) -> AsyncIterator[Session]:
    """:func:`get_session` for an endpoint whose reads may lag (uncached maps, OGC API, layer exports, reports and
    figures: docs/decisions/0022-read-replicas.md): on a read replica that has replayed the caller's last write,
    else on the primary (no replica configured, it is behind after ``read_wait_ms``, or it cannot be reached).
    Audit rows written through it go to the primary (:func:`spatial.store.replica.primary_of`), committed before
    the answer is sent. Such an endpoint must not write anything else."""
    replicas = request.app.state.replicas
    session = request.app.state.sessions() if replicas is None else \
        await run_in_threadpool(replicas.session, write_mark(request))
    async with _request_transaction(request, session) as session:
        yield session


@asynccontextmanager
async def _request_transaction(request: Request, session: Session) -> AsyncIterator[Session]:
    try:
        yield session
    except BaseException as exc:
        with anyio.CancelScope(shield=True):  # a client gone away must not leave the transaction open
            await run_in_threadpool(_end, session, False)
            await audit_refused(request, exc)
        raise
    lsn = await run_in_threadpool(_end, session, True)
    if lsn is not None:
        note_write(request, lsn)


async def refusals_audited(request: Request) -> AsyncIterator[None]:
    """For an endpoint without :data:`SessionDep` (which audits refusals itself): its refusals are audited."""
    try:
        yield
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await audit_refused(request, exc)
        raise


RefusalsAudited = Depends(refusals_audited, scope="function")


def _run_in_transaction(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> tuple[T, int | None]:
    session = request.app.state.sessions()
    try:
        with session.begin():
            result = work(session, *args, **kwargs)
        return result, session.info.pop("commit_lsn", None)
    finally:
        session.close()


async def in_transaction(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(session, *args, **kwargs)`` in a transaction of its own, in a worker thread: for an endpoint that
    needs a session on one path only (add :data:`RefusalsAudited` to it)."""
    result, lsn = await run_in_threadpool(_run_in_transaction, request, work, *args, **kwargs)
    if lsn is not None:
        note_write(request, lsn)
    return result


def _end(session: Session, commit: bool) -> int | None:
    """Commit (or roll back) and close: the connection goes back to the pool. A replica session's primary
    companion (its audit rows) is ended first. Returns the commit's WAL position if it wrote and replicas are
    configured (:func:`spatial.store.replica.commit_lsn`), else None."""
    companion = session.info.pop("primary_session", None)
    try:
        if companion is not None:
            _end(companion, commit)
        if commit:
            session.commit()
            return session.info.pop("commit_lsn", None)
        session.rollback()
        return None
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
ReadSessionDep = Annotated[Session, Depends(read_session, scope="function")]
"""The session of an endpoint whose reads may lag (:func:`read_session`); every other endpoint takes
:data:`SessionDep`."""


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # async: no thread-pool hop for a dict lookup


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def output_crs(crs: CrsParam = None) -> CoordSys:
    """The coordinate system the ``crs`` query parameter names: answers are in it (and positions sent in the
    query, unless another parameter names theirs). WGS 84 (lon, lat) when absent; UnknownCRS (400, the accepted
    names in the message) otherwise. Run on the event loop: names are parsed once and cached."""
    return parse_crs(crs)


CrsDep = Annotated[CoordSys, Depends(output_crs)]
"""The caller's ``crs`` query parameter, parsed: the one way an endpoint takes it (a ``crs`` in a request body
is parsed where the body is)."""


def public_url(request: Request, path: str = "") -> str:
    """The absolute URL of ``path`` (from the root, with any query) as clients reach the service:
    ``settings.base_url`` (``public_url``), never the request's ``Host`` header, which the client chooses and
    which would otherwise be reflected into TileJSON, style and OGC links (and caches)."""
    return request.app.state.settings.base_url + path


def this_url(request: Request, url: Any = None) -> str:
    """:func:`public_url` of this request's path and query (or of ``url``, a variant of ``request.url``)."""
    url = url or request.url
    return public_url(request, url.path + (f"?{url.query}" if url.query else ""))


class PrincipalCache:
    """token → :class:`Principal` for ``ttl_s`` seconds (by the token's SHA-256; the token itself is not kept)."""

    def __init__(self, ttl_s: float = PRINCIPAL_TTL_S, max_entries: int = 10_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._known: dict[bytes, tuple[Principal, float]] = {}

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, token: str) -> Principal | None:
        hit = self._known.get(self._key(token))
        return hit[0] if hit is not None and hit[1] > time.monotonic() else None

    def put(self, token: str, who: Principal) -> None:
        if len(self._known) >= self.max_entries:
            self._known.clear()
        self._known[self._key(token)] = (who, time.monotonic() + self.ttl_s)

    def forget(self, token: str) -> None:
        self._known.pop(self._key(token), None)

    def forget_digest(self, digest_hex: str) -> None:
        self._known.pop(bytes.fromhex(digest_hex), None)

    def clear(self) -> None:
        self._known.clear()


TOKENS_CHANNEL = PRINCIPALS_CHANNEL


def token_revoked(session: Session, request: Request, token: str) -> None:
    """Forget a revoked token here at once, and in every other server process when ``session`` commits."""
    principals(request).forget(token)
    publish(session, TOKENS_CHANNEL, {"digest": PrincipalCache._key(token).hex()})


def principals_of(app: FastAPI, kind: str = "principals") -> PrincipalCache:
    """The app's principal cache (made on first use): of login tokens, or with ``kind="token_principals"`` of
    personal access tokens (by their secret's SHA-256, which is also their ``secret_hash``)."""
    cache = getattr(app.state, kind, None)
    if cache is None:
        cache = PrincipalCache()
        setattr(app.state, kind, cache)
    return cache


CACHES = ("principals", "token_principals")


def callers_changed(app: FastAPI, payload: dict | None) -> None:
    """A :data:`TOKENS_CHANNEL` notification (None: notifications may have been missed): forget the token of
    ``{"digest": ...}`` (login or access token), or every caller remembered."""
    for kind in CACHES:
        if payload is not None and "digest" in payload:
            principals_of(app, kind).forget_digest(payload["digest"])
        else:
            principals_of(app, kind).clear()


def principals(request: Request) -> PrincipalCache:
    return principals_of(request.app)


def principal_of(request: Request, token: str) -> Principal:
    """The caller behind ``token`` with this request's client address, from the cache or else the database
    (a short transaction of its own; blocking: call it from a worker thread)."""
    cache = principals(request)
    who = cache.get(token)
    if who is None:
        with request.app.state.sessions.begin() as session:
            who = principal_for_token(session, token)
        cache.put(token, who)
    who = replace(who, client_addr=client_address(request))
    request.state.principal = who
    return who


async def caller(request: Request, token: str) -> Principal:
    """:func:`principal_of` without leaving the event loop when the token is cached (the usual case)."""
    if principals(request).get(token) is not None:
        return principal_of(request, token)
    return await run_in_threadpool(principal_of, request, token)


def _is_basic(request: Request) -> bool:
    return get_authorization_scheme_param(request.headers.get("authorization"))[0].lower() == "basic"


async def current_user(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                                 Depends(bearer_scheme)]) -> Principal:
    if credentials is None:
        raise NotAuthenticated(BASIC_ELSEWHERE if _is_basic(request) else LOGIN_FIRST)
    return await caller(request, credentials.credentials)


CurrentUser = Annotated[Principal, Depends(current_user)]


async def optional_user(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                                  Depends(bearer_scheme)]) -> Principal | None:
    """The caller if a valid token is sent, else None (no token, or one that is expired or unknown): for an
    endpoint open to anyone that tells more to some roles."""
    if credentials is None:
        return None
    try:
        return await caller(request, credentials.credentials)
    except NotAuthenticated:
        return None


OptionalUser = Annotated[Principal | None, Depends(optional_user)]


class TokenBasic(HTTPBasic):
    """HTTP Basic with a personal access token as the password: None without Basic credentials, NotAuthenticated
    (a 401 the client understands) for malformed ones. Marks the request so that a 401 of it challenges with
    :data:`BASIC_CHALLENGE` (QGIS and GDAL then send their Basic credentials)."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        request.state.challenge = BASIC_CHALLENGE
        scheme, param = get_authorization_scheme_param(request.headers.get("authorization"))
        if scheme.lower() != "basic":
            return None
        try:
            username, separator, password = b64decode(param, validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError, binascii.Error):
            separator = ""
        if not separator or len(username) > users.MAX_USERNAME_LENGTH or len(password) > users.MAX_PASSWORD_LENGTH:
            raise NotAuthenticated("malformed HTTP Basic credentials: send base64 of '<user name>:<access token>'")
        return HTTPBasicCredentials(username=username, password=password)


basic_scheme = TokenBasic(auto_error=False, realm="gridgov",
                          description=f"user name + personal access token (POST /api/tokens), on {TOKEN_ENDPOINTS}")


def _token_principal(request: Request, username: str, secret: str) -> Principal:
    """Check a Basic login against the throttle, then the token (a transaction of its own; blocking). A refusal
    (401, or 429 beyond the throttle) is audited here as a failed ``login`` of ``username``, which the throttle
    counts (:func:`spatial.store.users.refuse_if_throttled`)."""
    settings, sessions, address = request.app.state.settings, request.app.state.sessions, client_address(request)
    try:
        with sessions.begin() as session:
            users.refuse_if_throttled(session, username, address, max_failures=settings.login_max_failures,
                                      max_per_address=settings.login_max_failures_per_address,
                                      max_per_name=settings.login_max_failures_per_name,
                                      window_s=settings.login_window_s)
            who = tokens.principal_for_secret(session, username, secret, address)
    except (NotAuthenticated, TooManyRequests) as exc:
        request.state.refusal_audited = True
        audit.record_apart(sessions, None, "login", object_type="user", object_id=username,
                           fields=["access_token"], result=f"refused {status_of(exc)}: {exc}", client_addr=address)
        raise
    principals_of(request.app, "token_principals").put(secret, who)
    return who


async def token_caller(request: Request, username: str, secret: str) -> Principal:
    """The caller behind a Basic login with an access token: remembered (:data:`PRINCIPAL_TTL_S`) or checked."""
    who = principals_of(request.app, "token_principals").get(secret)
    if who is None or who.username != username:
        who = await run_in_threadpool(_token_principal, request, username, secret)
    who = replace(who, client_addr=client_address(request))
    request.state.principal = who
    return who


async def reader(request: Request,
                 basic: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
                 bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)]) -> Principal:
    """The caller of a read endpoint of the OGC API, the tiles or the exports: a login's bearer token, or HTTP
    Basic with a personal access token."""
    if basic is not None:
        return await token_caller(request, basic.username, basic.password)
    if bearer is None:
        raise NotAuthenticated(LOGIN_OR_TOKEN)
    return await caller(request, bearer.credentials)


ReaderUser = Annotated[Principal, Depends(reader)]
"""For the read endpoints of ``/ogc``, ``/tiles`` and the exports only: a login, or an access token (read-only)."""


def access_token_revoked(request: Request, secret_hash: bytes) -> None:
    """Forget a revoked access token in this process at once (the others hear of it on commit:
    :func:`spatial.store.tokens.revoke_token`)."""
    principals_of(request.app, "token_principals").forget_digest(secret_hash.hex())
