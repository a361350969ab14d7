"""Response and request schemas (``ThingPublic`` is what leaves the server)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

# The bounds of request values live in api.types (one module for every request type); importable here too.
from api.types import PG_BIGINT_MAX, PG_INTEGER_MAX, SOLVER_MAX_S, BigId, Id, SolverSeconds  # noqa: F401


class Label(BaseModel):
    """A vocabulary code with its Chinese and English names (:mod:`spatial.vocab`)."""

    code: str
    zh: str
    en: str


class UserPublic(BaseModel):
    username: str
    display_name: str | None = None
    role: str
    role_zh: str
    scope_code: str | None = None
    grid_ids: list[int] = []


class TokenPublic(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
    user: UserPublic


class LayerPublic(BaseModel):
    name: str
    label_zh: str
    label_en: str
    filters: list[str]
    url: str


class HealthPublic(BaseModel):
    """Whether the service and its database are up. The versions only for admins (they help an attacker more
    than a health probe)."""

    status: str
    database: str
    postgis: str | None = Field(None, description="PostGIS version; admins only")
    pgrouting: str | None = Field(None, description="pgRouting version; admins only")
    schema_revision: str | None = Field(None, description="schema revision; admins only")


class AuditEntryPublic(BaseModel):
    """One audit row as an auditor sees it (times in UTC)."""

    id: int
    at: datetime
    username: str | None
    role: str | None
    action: str
    object_type: str | None
    object_id: str | None
    fields: list[str]
    purpose: str | None
    result: str
    client_addr: str | None
    household_ids: list[int] = Field(default_factory=list, description="the households whose data it concerned")
    db_user: str | None = Field(None, description="the database login that wrote the row (set by the database: "
                                "gridgov_app for the service, gridgov_owner for the command line)")

    model_config = {"from_attributes": True}


class AuditPagePublic(BaseModel):
    total: int
    offset: int
    entries: list[AuditEntryPublic]


class AccessTokenCreate(BaseModel):
    """A new personal access token (read-only: OGC API, tiles and exports)."""

    name: str = Field(min_length=1, max_length=64, pattern=r"\S",
                      description="what it is for, e.g. 'QGIS office PC' (1–64 characters, not only white space)")
    days: int = Field(default=90, ge=1, le=365, description="lifetime in days (1–365, default 90)")
    scopes: list[Literal["read"]] = Field(default=["read"], min_length=1, max_length=1,
                                          description="only 'read': tokens never change anything")


class AccessTokenPublic(BaseModel):
    """A personal access token as listed (never its secret)."""

    id: int
    username: str = Field(description="its owner, whose role and area it acts with")
    name: str
    hint: str = Field(description="the first characters of the secret, to tell tokens apart")
    scopes: list[str]
    state: Literal["active", "expired", "revoked"]
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None = Field(description="to the minute")
    revoked_at: datetime | None


class AccessTokenCreated(AccessTokenPublic):
    secret: str = Field(description="shown this once: the password of HTTP Basic (with the owner's user name)")
