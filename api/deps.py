"""Typed dependencies: the database session of a request and the authenticated caller."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from gridgov.settings import Settings
from spatial.access import Principal
from spatial.errors import NotAuthenticated
from spatial.store.users import principal_for_token

_bearer = HTTPBearer(auto_error=False, description="token from POST /api/auth/token")


def get_session(request: Request) -> Iterator[Session]:
    """One transaction per request: committed when the endpoint returns, rolled back if it raises.

    Runs with ``scope="function"`` so the commit happens before the response is sent: a client that sees
    a 2xx knows its change is stored.
    """
    with request.app.state.sessions.begin() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def client_address(request: Request) -> str | None:
    return request.client.host if request.client else None


def current_user(request: Request, session: SessionDep,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    if credentials is None:
        raise NotAuthenticated("log in first: send 'Authorization: Bearer <token>' (POST /api/auth/token)")
    return principal_for_token(session, credentials.credentials, client_address(request))


CurrentUser = Annotated[Principal, Depends(current_user)]
