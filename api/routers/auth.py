"""Login with user name and password, and who am I."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.deps import CurrentUser, SessionDep, SettingsDep, client_address, token_revoked
from api.schemas import TokenPublic, UserPublic
from spatial.access import Principal
from spatial.store import audit, users
from spatial.vocab import ROLES, label

router = APIRouter(prefix="/api/auth", tags=["auth · 登录"])


def _public(p: Principal, display_name: str | None = None) -> UserPublic:
    return UserPublic(username=p.username, display_name=display_name, role=p.role, role_zh=label(ROLES, p.role),
                      scope_code=p.scope_code, grid_ids=sorted(p.grid_ids))


# Bounded here, so an oversized name or password is a 422 before any hashing, throttling or audit row.
LoginName = Annotated[str, Form(min_length=1, max_length=users.MAX_USERNAME_LENGTH)]
LoginPassword = Annotated[str, Form(min_length=1, max_length=users.MAX_PASSWORD_LENGTH, json_schema_extra={
    "format": "password"})]


@router.post("/token", response_model=TokenPublic, summary="Log in (登录): user name + password → bearer token",
             description="A form (`application/x-www-form-urlencoded`, as OAuth2's password flow). Failed logins are "
                         "audited and limited within `GRIDGOV_LOGIN_WINDOW_S`: per user name from one address, per "
                         "address and per user name; beyond, 429 with `Retry-After`.")
def login(request: Request, username: LoginName, password: LoginPassword, session: SessionDep,
          settings: SettingsDep) -> TokenPublic:
    request.state.login_name = username  # a refusal below is audited under this name (api.deps)
    users.refuse_if_throttled(session, username, client_address(request), max_failures=settings.login_max_failures,
                              max_per_address=settings.login_max_failures_per_address,
                              max_per_name=settings.login_max_failures_per_name, window_s=settings.login_window_s)
    user = users.authenticate(session, username, password)
    token, expires = users.issue_token(session, user, settings.token_ttl_s)
    who = users.principal_for_user(session, user, client_address(request))
    audit.record(session, who, "login", object_type="user", object_id=user.username)
    return TokenPublic(access_token=token, expires_at=expires, user=_public(who, user.display_name))


@router.get("/me", response_model=UserPublic, summary="The logged-in user (当前用户)")
def me(who: CurrentUser) -> UserPublic:
    return _public(who)


@router.post("/logout", status_code=204, summary="Revoke the token used for this request (退出登录)")
def logout(request: Request, session: SessionDep, who: CurrentUser,
           credentials: Annotated[HTTPAuthorizationCredentials, Depends(HTTPBearer())]) -> None:
    users.revoke_token(session, credentials.credentials)
    token_revoked(session, request, credentials.credentials)
    audit.record(session, who, "logout", object_type="user", object_id=who.username)
