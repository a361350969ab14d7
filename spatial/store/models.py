"""GeoAlchemy2 models mapped onto the migrated schema (the migrations are the authority on DDL).

Geometry columns are EPSG:4326, axis order (lon, lat). Spatial indexes are created by the migrations, so
``spatial_index=False`` here. Derived columns (``Building.code``, ``Grid.version``) are maintained by
triggers: read them, never set them.
"""

from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    FetchedValue,
    func,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

SRID = 4326


def _geom(kind: str) -> Geometry:
    return Geometry(kind, srid=SRID, spatial_index=False)


def _city_code():
    """The deployment's city code (migration 0029): the column's default, set per deployment; never set here."""
    return mapped_column(String(4), server_default=FetchedValue())


class Base(DeclarativeBase):
    pass


class Division(Base):
    """District, subdistrict (街道) or community (社区), keyed by its 12-digit code."""

    __tablename__ = "divisions"
    code: Mapped[str] = mapped_column(String(12), primary_key=True)
    level: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    parent_code: Mapped[str | None] = mapped_column(ForeignKey("divisions.code"))
    boundary = mapped_column(_geom("MULTIPOLYGON"), nullable=True)
    synthetic: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, server_default="1")  # by trigger (migration 0013)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class DivisionVersion(Base):
    """One version of a division, valid in [valid_from, valid_to); written by trigger (migration 0013)."""

    __tablename__ = "division_versions"
    code: Mapped[str] = mapped_column(ForeignKey("divisions.code"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    level: Mapped[str] = mapped_column(Text)
    name: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str | None] = mapped_column(Text)
    parent_code: Mapped[str | None] = mapped_column(String(12))
    boundary = mapped_column(_geom("MULTIPOLYGON"), nullable=True)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    author: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class Grid(Base):
    """A grid (网格): current state. Every insert/update writes a :class:`GridVersion` by trigger."""

    __tablename__ = "grids"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(14), unique=True)
    community_code: Mapped[str] = mapped_column(ForeignKey("divisions.code"))
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, default="comprehensive")
    boundary = mapped_column(_geom("MULTIPOLYGON"), nullable=False)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    retired_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    city_code: Mapped[str] = _city_code()


class GridVersion(Base):
    """One version of a grid, valid in [valid_from, valid_to); the current one has valid_to NULL."""

    __tablename__ = "grid_versions"
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(14))
    community_code: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text)
    boundary = mapped_column(_geom("MULTIPOLYGON"), nullable=False)
    retired: Mapped[bool] = mapped_column(Boolean)
    valid_from: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    valid_to: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    author: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)


class MicroGrid(Base):
    """A micro-grid (微网格) of about five buildings with a volunteer building head (楼栋长)."""

    __tablename__ = "micro_grids"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"))
    seq: Mapped[int] = mapped_column(Integer)
    name: Mapped[str | None] = mapped_column(Text)
    boundary = mapped_column(_geom("MULTIPOLYGON"), nullable=False)
    head_name: Mapped[str | None] = mapped_column(Text)
    head_phone: Mapped[str | None] = mapped_column(String(11))


class Building(Base):
    """A building (楼栋). ``code`` = grid code (14) + 5-digit ``number``, derived by trigger."""

    __tablename__ = "buildings"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    origin: Mapped[str] = mapped_column(Text, server_default="manual")
    origin_ref: Mapped[str] = mapped_column(Text, server_default=func.gen_random_uuid().cast(Text))
    community_code: Mapped[str | None] = mapped_column(ForeignKey("divisions.code"))
    grid_id: Mapped[int | None] = mapped_column(ForeignKey("grids.id"))
    micro_grid_id: Mapped[int | None] = mapped_column(ForeignKey("micro_grids.id"))
    number: Mapped[int | None] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(String(19), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    footprint = mapped_column(_geom("MULTIPOLYGON"), nullable=False)
    footprint_3857 = mapped_column(Geometry("MULTIPOLYGON", srid=3857, spatial_index=False),
                                   Computed("ST_Transform(footprint, 3857)", persisted=True))  # for tiles
    levels: Mapped[int | None] = mapped_column(SmallInteger)
    height_m: Mapped[float | None] = mapped_column(Float)
    use: Mapped[str] = mapped_column(Text, server_default="residential")
    urban_village: Mapped[bool] = mapped_column(Boolean, server_default="false")
    units: Mapped[int | None] = mapped_column(SmallInteger)
    households: Mapped[int | None] = mapped_column(Integer)
    residents: Mapped[int | None] = mapped_column(Integer)
    occupancy_estimated: Mapped[bool] = mapped_column(Boolean, server_default="false")
    city_code: Mapped[str] = _city_code()

    grid: Mapped[Grid | None] = relationship()


class Household(Base):
    """A household (户). Head-of-household fields are personal data: mask them on the way out."""

    __tablename__ = "households"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    building_id: Mapped[int] = mapped_column(ForeignKey("buildings.id"))
    unit: Mapped[str] = mapped_column(Text, server_default="1")
    floor: Mapped[int | None] = mapped_column(SmallInteger)
    room: Mapped[str] = mapped_column(Text)
    residents: Mapped[int] = mapped_column(SmallInteger, server_default="1")
    head_name: Mapped[str | None] = mapped_column(Text)
    head_id_number: Mapped[str | None] = mapped_column(String(18))
    head_phone: Mapped[str | None] = mapped_column(String(11))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    """Bumped by the database on every change of the row or of its persons (migration 0019): the ETag of edits."""
    city_code: Mapped[str] = _city_code()

    building: Mapped[Building] = relationship()


class Person(Base):
    """One residence of a person in a household (实有人口); closed rows (``moved_out``) are history. ID and phone
    numbers are only stored sealed, keyed-hashed and masked (:mod:`spatial.personal_keys`, migration 0016)."""

    __tablename__ = "persons"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    household_id: Mapped[int] = mapped_column(ForeignKey("households.id"))
    name: Mapped[str] = mapped_column(Text)
    gender: Mapped[str | None] = mapped_column(Text)
    relation: Mapped[str] = mapped_column(Text, server_default="other")
    kind: Mapped[str] = mapped_column(Text, server_default="registered")
    id_number_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_hash: Mapped[bytes] = mapped_column(LargeBinary)
    id_number_masked: Mapped[str] = mapped_column(Text)
    phone_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_hash: Mapped[bytes | None] = mapped_column(LargeBinary)
    phone_masked: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    isolation_from: Mapped[date | None] = mapped_column(Date)
    isolation_to: Mapped[date | None] = mapped_column(Date)
    moved_in: Mapped[date | None] = mapped_column(Date)
    moved_out: Mapped[date | None] = mapped_column(Date)
    moved_out_reason: Mapped[str | None] = mapped_column(Text)
    origin: Mapped[str] = mapped_column(Text, server_default="manual")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    ledger_row: Mapped[bytes | None] = mapped_column(LargeBinary)  # fingerprint of the ledger row (migration 0029)
    city_code: Mapped[str] = _city_code()


class Enclosure(Base):
    """An enclosure (围合): the polygon's boundary is the perimeter to seal or staff."""

    __tablename__ = "enclosures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(Text, server_default="estate")
    community_code: Mapped[str | None] = mapped_column(ForeignKey("divisions.code"))
    boundary = mapped_column(_geom("POLYGON"), nullable=False)


class Checkpoint(Base):
    """A checkpoint (卡口) at an opening of an enclosure's perimeter."""

    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    enclosure_id: Mapped[int | None] = mapped_column(ForeignKey("enclosures.id"))
    name: Mapped[str] = mapped_column(Text)
    location = mapped_column(_geom("POINT"), nullable=False)
    kind: Mapped[str] = mapped_column(Text, server_default="pedestrian")
    status: Mapped[str] = mapped_column(Text, server_default="unstaffed")
    opening_hours: Mapped[str] = mapped_column(Text, server_default="24/7")
    staff_count: Mapped[int] = mapped_column(SmallInteger, server_default="0")


class StreetNode(Base):
    __tablename__ = "street_nodes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    origin: Mapped[str] = mapped_column(Text, server_default="manual")
    origin_ref: Mapped[str] = mapped_column(Text)
    location = mapped_column(_geom("POINT"), nullable=False)


class StreetEdge(Base):
    """A street or footpath segment; ``source``/``target`` are node ids as pgRouting expects."""

    __tablename__ = "street_edges"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    origin: Mapped[str] = mapped_column(Text, server_default="manual")
    origin_ref: Mapped[str] = mapped_column(Text)
    source: Mapped[int] = mapped_column(ForeignKey("street_nodes.id"))
    target: Mapped[int] = mapped_column(ForeignKey("street_nodes.id"))
    osm_way_id: Mapped[int | None] = mapped_column(BigInteger)
    highway: Mapped[str | None] = mapped_column(Text)
    name: Mapped[str | None] = mapped_column(Text)
    oneway: Mapped[bool] = mapped_column(Boolean, server_default="false")
    foot: Mapped[bool] = mapped_column(Boolean, server_default="true")
    car: Mapped[bool] = mapped_column(Boolean, server_default="true")
    length_m: Mapped[float] = mapped_column(Float)
    geom = mapped_column(_geom("LINESTRING"), nullable=False)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    display_name: Mapped[str | None] = mapped_column(Text)
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    scope_code: Mapped[str | None] = mapped_column(ForeignKey("divisions.code"))
    department: Mapped[str | None] = mapped_column(Text)
    active: Mapped[bool] = mapped_column(Boolean, server_default="true")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class GridAssignment(Base):
    __tablename__ = "grid_assignments"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    grid_id: Mapped[int] = mapped_column(ForeignKey("grids.id"), primary_key=True)
    duty: Mapped[str] = mapped_column(Text, server_default="worker")
    contact: Mapped[str | None] = mapped_column(String(11))
    """The grid worker's work phone for this grid (migration 0026), shown on the team page."""


class AuthToken(Base):
    __tablename__ = "auth_tokens"
    token_hash: Mapped[bytes] = mapped_column(LargeBinary, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccessToken(Base):
    """A personal access token (migration 0014): read-only, expiring, revocable; only its secret's SHA-256 kept."""

    __tablename__ = "access_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(Text)
    secret_hash: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    hint: Mapped[str] = mapped_column(Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{read}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AuditEntry(Base):
    """One append-only audit record: who did what to which object's fields, why, and from where.

    ``household_ids``: the households whose data the action read, revealed, exported or changed (GIN-indexed,
    for "who saw household X"); empty for rows about anything else."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.clock_timestamp())
    username: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    object_type: Mapped[str | None] = mapped_column(Text)
    object_id: Mapped[str | None] = mapped_column(Text)
    household_ids: Mapped[list[int]] = mapped_column(postgresql.ARRAY(BigInteger), server_default="{}")
    fields: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    purpose: Mapped[str | None] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text, server_default="ok")
    client_addr: Mapped[str | None] = mapped_column(Text)
    db_user: Mapped[str | None] = mapped_column(Text)  # set by the database: the login that wrote the row
