"""Response and request schemas (``ThingPublic`` is what leaves the server)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


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
    status: str
    database: str
    postgis: str
    pgrouting: str
    schema_revision: str | None


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

    model_config = {"from_attributes": True}


class AuditPagePublic(BaseModel):
    total: int
    offset: int
    entries: list[AuditEntryPublic]
