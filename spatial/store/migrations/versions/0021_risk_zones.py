"""Risk zones (风险区域 · 五色图): designations on gridgov's own geometry or a drawn polygon, with history.

* ``risk_schemes``: the level schemes a zone may use, each level with a ``severity`` on one common scale (1 lowest
  … 5 highest) so that zones of different schemes compare; shipped: ``five_colour`` (五色图: 红 5, 橙 4, 黄 3,
  蓝 2, 绿 1) and ``control`` (封控区 5, 管控区 4, 防范区 2). More may be inserted (data, not code).
* ``risk_zones``: one row per zone: what it is drawn on (``target_kind`` division, enclosure, grid, building,
  unit or polygon, ``target_ref`` the code / id, ``building_id`` and ``unit`` for buildings and units), its
  ``community_code`` (scope) and the current ``version`` (ETag).
* ``risk_zone_versions``: the zone's history as consecutive periods ``[valid_from, valid_to)`` (``valid_to``
  NULL: open-ended), each with its scheme, level, severity, boundary (EPSG:4326 MultiPolygon: a snapshot of the
  target's geometry when designated), who and why, and what the change was (designate, change, lift). A change at
  time T closes the running period at T and opens a new one; a lift closes it and records a zero-length 'lift'
  period. The level of anything at time t is read from the periods containing t (never from the current row), so
  the map's time slider and OGC ``datetime`` replay the past as it was designated.
* ``risk_zone_campaigns``: the screening campaigns opened over a zone's households (campaign id → zone; campaigns
  are on a branch of their own, migration 0004, so there is no foreign key to them).
* Tile triggers (the function of migration 0011) on ``risk_zone_versions``: layer ``risk_zones``.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03
"""

import json

from alembic import op
from sqlalchemy import text

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

TARGETS = ("division", "enclosure", "grid", "building", "unit", "polygon")
CHANGES = ("designate", "change", "lift")

SCHEMES = {
    "five_colour": ("五色图", "Five colours", [
        {"level": "red", "severity": 5, "colour": "#d32f2f", "label_zh": "红色", "label_en": "Red"},
        {"level": "orange", "severity": 4, "colour": "#f57c00", "label_zh": "橙色", "label_en": "Orange"},
        {"level": "yellow", "severity": 3, "colour": "#fbc02d", "label_zh": "黄色", "label_en": "Yellow"},
        {"level": "blue", "severity": 2, "colour": "#1976d2", "label_zh": "蓝色", "label_en": "Blue"},
        {"level": "green", "severity": 1, "colour": "#388e3c", "label_zh": "绿色", "label_en": "Green"}]),
    "control": ("封控/管控/防范", "Sealed / controlled / precaution", [
        {"level": "sealed", "severity": 5, "colour": "#c62828", "label_zh": "封控区", "label_en": "Sealed area"},
        {"level": "controlled", "severity": 4, "colour": "#ef6c00", "label_zh": "管控区", "label_en": "Controlled area"},
        {"level": "precaution", "severity": 2, "colour": "#1565c0", "label_zh": "防范区",
         "label_en": "Precaution area"}]),
}


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


UPGRADE = f"""
CREATE TABLE risk_schemes (
    name      text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{{1,39}}$'),
    label_zh  text NOT NULL CHECK (label_zh <> ''),
    label_en  text NOT NULL CHECK (label_en <> ''),
    levels    jsonb NOT NULL CHECK (jsonb_typeof(levels) = 'array' AND jsonb_array_length(levels) BETWEEN 1 AND 10),
    builtin   boolean NOT NULL DEFAULT false
);

CREATE TABLE risk_zones (
    id              serial PRIMARY KEY,
    name            text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 200),
    target_kind     text NOT NULL CHECK (target_kind IN ({_list(TARGETS)})),
    target_ref      text CHECK (length(target_ref) <= 40),
    building_id     bigint REFERENCES buildings (id),
    unit            text CHECK (length(unit) <= 20),
    community_code  varchar(12) REFERENCES divisions (code),
    scope_code      varchar(12) NOT NULL REFERENCES divisions (code),
    version         integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_by      text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CHECK ((target_kind IN ('building', 'unit')) = (building_id IS NOT NULL)),
    CHECK ((target_kind = 'unit') = (unit IS NOT NULL)),
    CHECK ((target_kind = 'polygon') = (target_ref IS NULL))
);
CREATE INDEX risk_zones_scope_idx ON risk_zones (scope_code text_pattern_ops);
CREATE TRIGGER risk_zones_no_delete BEFORE DELETE ON risk_zones
    FOR EACH ROW EXECUTE FUNCTION refuse_change('lift the zone instead');

CREATE TABLE risk_zone_versions (
    zone_id      integer NOT NULL REFERENCES risk_zones (id),
    version      integer NOT NULL,
    change       text NOT NULL CHECK (change IN ({_list(CHANGES)})),
    scheme       text NOT NULL REFERENCES risk_schemes (name),
    level        text NOT NULL,
    severity     smallint NOT NULL CHECK (severity BETWEEN 1 AND 9),
    building_id  bigint,
    unit         text,
    boundary     geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(boundary) AND NOT ST_IsEmpty(boundary)),
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz CHECK (valid_to >= valid_from),
    author       text NOT NULL,
    reason       text NOT NULL CHECK (btrim(reason) <> '' AND length(reason) <= 1000),
    basis        jsonb,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (zone_id, version)
);
-- the level of a building at t: area periods by boundary (GiST), building and unit periods by building id
CREATE INDEX risk_zone_versions_boundary_gix ON risk_zone_versions USING gist (boundary) WHERE building_id IS NULL;
CREATE INDEX risk_zone_versions_building_idx ON risk_zone_versions (building_id, valid_from)
    WHERE building_id IS NOT NULL;
CREATE INDEX risk_zone_versions_time_idx ON risk_zone_versions (valid_from, valid_to);
CREATE TRIGGER risk_zone_versions_no_delete BEFORE DELETE ON risk_zone_versions
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the history of risk zones is kept');

-- campaigns live on a branch of their own (0004), so no foreign key to them here; campaigns are never deleted
CREATE TABLE risk_zone_campaigns (
    campaign_id  integer PRIMARY KEY,
    zone_id      integer NOT NULL REFERENCES risk_zones (id)
);
"""

TILES = ("SELECT ST_Extent(boundary) FROM %s", ["risk_zones"])


def _tile_triggers() -> list[str]:
    extent_sql, layers = TILES
    args = "'" + extent_sql.replace("'", "''") + "', '" + ",".join(layers) + "'"
    name, table = "risk_zone_versions_tiles", "risk_zone_versions"
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})",
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})",
        f"CREATE TRIGGER {name}_truncate AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})",
    ]


def upgrade() -> None:
    op.execute(UPGRADE)
    insert = text("INSERT INTO risk_schemes (name, label_zh, label_en, levels, builtin) "
                  "VALUES (:name, :zh, :en, CAST(:levels AS jsonb), true)")
    for name, (zh, en, levels) in SCHEMES.items():
        op.get_bind().execute(insert, {"name": name, "zh": zh, "en": en,
                                       "levels": json.dumps(levels, ensure_ascii=False)})
    for statement in _tile_triggers():
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS risk_zone_campaigns, risk_zone_versions, risk_zones, risk_schemes CASCADE")
