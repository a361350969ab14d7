"""Response and request schemas (``ThingPublic`` is what leaves the server)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

# The bounds of request values live in api.types (one module for every request type); importable here too.
from api.types import PG_BIGINT_MAX, PG_INTEGER_MAX, SOLVER_MAX_S, BigId, Id, SolverSeconds  # noqa: F401


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

