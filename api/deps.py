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
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Annotated, Any, TypeVar

import anyio
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.errors import status_of
from api.geojson import CrsParam
from spatial.access import Principal
from spatial.errors import Forbidden, GridgovError, NotAuthenticated, OutOfScope, TooManyRequests
from spatial.geometry.crs import CoordSys, parse_crs
from spatial.settings import Settings
from spatial.store import audit
from spatial.store.notify import publish
from spatial.store.users import PRINCIPALS_CHANNEL, principal_for_token

T = TypeVar("T")
bearer_scheme = HTTPBearer(auto_error=False, description="token from POST /api/auth/token")
PRINCIPAL_TTL_S = 10.0
LOGIN_FIRST = "log in first: send 'Authorization: Bearer <token>' (POST /api/auth/token)"


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
    by a search for it) and the message they got."""
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
    """One transaction per request: committed when the endpoint returns, rolled back if it raises.

    Runs with ``scope="function"`` so the commit happens before the response is sent: a client that sees
    a 2xx knows its change is stored. Refusals are audited after the rollback (module docstring).

    Opening a session does no I/O (it connects on first use), so this runs on the event loop; the end of the
    transaction (commit or rollback, and returning the connection to the pool) is one call in a worker thread.
    """
    session = request.app.state.sessions()
    try:
        yield session
    except BaseException as exc:
        with anyio.CancelScope(shield=True):  # a client gone away must not leave the transaction open
            await run_in_threadpool(_end, session, False)
            await audit_refused(request, exc)
        raise
    await run_in_threadpool(_end, session, True)


async def refusals_audited(request: Request) -> AsyncIterator[None]:
    """For an endpoint without :data:`SessionDep` (which audits refusals itself): its refusals are audited."""
    try:
        yield
    except BaseException as exc:
        with anyio.CancelScope(shield=True):
            await audit_refused(request, exc)
        raise


RefusalsAudited = Depends(refusals_audited, scope="function")


def _run_in_transaction(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with request.app.state.sessions.begin() as session:
        return work(session, *args, **kwargs)


async def in_transaction(request: Request, work: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``work(session, *args, **kwargs)`` in a transaction of its own, in a worker thread: for an endpoint that
    needs a session on one path only (add :data:`RefusalsAudited` to it)."""
    return await run_in_threadpool(_run_in_transaction, request, work, *args, **kwargs)


def _end(session: Session, commit: bool) -> None:
    """Commit (or roll back) and close: the connection goes back to the pool."""
    try:
        if commit:
            session.commit()
        else:
            session.rollback()
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


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


def principals_of(app: FastAPI) -> PrincipalCache:
    """The app's principal cache (made on first use)."""
    cache = getattr(app.state, "principals", None)
    if cache is None:
        cache = app.state.principals = PrincipalCache()
    return cache


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


async def current_user(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                                 Depends(bearer_scheme)]) -> Principal:
    if credentials is None:
        raise NotAuthenticated(LOGIN_FIRST)
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
