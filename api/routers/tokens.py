"""Personal access tokens (访问令牌) for GIS clients: create, list and revoke one's own; admins anyone's.

A token is the password of HTTP Basic (with its owner's user name) on the read endpoints of the OGC API, the
tiles and the exports (:mod:`spatial.store.tokens`, decision 0011). Managing tokens needs a login (bearer):
a token cannot make or revoke tokens.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from api.deps import CurrentUser, SessionDep, access_token_revoked
from api.schemas import AccessTokenCreate, AccessTokenCreated, AccessTokenPublic
from spatial.store import tokens

router = APIRouter(prefix="/api/tokens", tags=["tokens · 访问令牌"])


def _public(info: tokens.TokenInfo) -> AccessTokenPublic:
    return AccessTokenPublic(**vars(info), state=info.state)


@router.post("", status_code=201, response_model=AccessTokenCreated,
             summary="Create a personal access token (新建访问令牌); its secret is shown once",
             description=f"Read-only (scope `read`): accepted as the password of HTTP Basic, with your user name, on "
                         f"the read endpoints of `/ogc`, `/tiles` and `/api/export`, acting with your role and area. "
                         f"Lives {tokens.MIN_DAYS}–{tokens.MAX_DAYS} days; at most {tokens.MAX_ACTIVE} live tokens "
                         f"per user (409 beyond). Audited.")
def create(body: AccessTokenCreate, session: SessionDep, who: CurrentUser) -> AccessTokenCreated:
    info, secret = tokens.create_token(session, who.username, body.name, days=body.days, scopes=tuple(body.scopes),
                                       who=who)
    return AccessTokenCreated(**_public(info).model_dump(), secret=secret)


@router.get("", response_model=list[AccessTokenPublic],
            summary="List tokens (访问令牌列表): yours, or anyone's for admins")
def list_(session: SessionDep, who: CurrentUser,
          user: Annotated[str | None, Query(max_length=64, description="whose (admins; default: yours)")] = None,
          all_users: Annotated[bool, Query(alias="all", description="everyone's (admins)")] = False,
          ) -> list[AccessTokenPublic]:
    if all_users or (user is not None and user != who.username):
        who.require_role("admin")
    return [_public(t) for t in tokens.list_tokens(session, None if all_users else user or who.username)]


@router.delete("/{token_id}", status_code=204, summary="Revoke a token (吊销访问令牌): yours, or any (admins)")
def revoke(token_id: Annotated[int, Path(ge=1, le=2**31 - 1)], request: Request, session: SessionDep,
           who: CurrentUser) -> None:
    _, digest = tokens.revoke_token(session, token_id, who=who, owner=None if who.role == "admin" else who.username)
    access_token_revoked(request, digest)
