"""Foundation schema: divisions, versioned grids, micro-grids, buildings, households, checkpoints,
enclosures, street network, users and tokens, audit log.

Geometries are EPSG:4326 (lon, lat; CGCS2000 accepted as equal) with GiST indexes. Lengths and areas are
measured in a projected CRS at query time, never stored in degrees.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

HOUSEHOLD_TAGS = (
    "elderly_alone", "elderly", "disabled", "home_isolation", "chronic_illness", "pregnant",
    "minor_unaccompanied", "low_income", "veteran", "special_care",
)

UPGRADE = r"""
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgrouting;

-- Administrative divisions: 12-digit codes, 6 county + 3 subdistrict + 3 community (GB/T 2260 practice).
CREATE TABLE divisions (
    code         varchar(12) PRIMARY KEY CHECK (code ~ '^[0-9]{12}$'),
    level        text NOT NULL CHECK (level IN ('district', 'subdistrict', 'community')),
    name         text NOT NULL CHECK (name <> ''),
    name_en      text,
    parent_code  varchar(12) REFERENCES divisions (code),
    boundary     geometry(MultiPolygon, 4326) CHECK (boundary IS NULL OR ST_IsValid(boundary)),
    synthetic    boolean NOT NULL DEFAULT false,
    CONSTRAINT divisions_code_matches_level CHECK (
        (level = 'district'    AND substr(code, 7) = '000000' AND parent_code IS NULL)
     OR (level = 'subdistrict' AND substr(code, 10) = '000' AND substr(code, 7, 3) <> '000'
                               AND parent_code = substr(code, 1, 6) || '000000')
     OR (level = 'community'   AND substr(code, 10) <> '000'
                               AND parent_code = substr(code, 1, 9) || '000'))
);
CREATE INDEX divisions_boundary_gix ON divisions USING gist (boundary);
CREATE INDEX divisions_parent_idx ON divisions (parent_code);

-- Grids: community code (12) + 2-digit number. Current state here, every version in grid_versions.
CREATE TABLE grids (
    id              serial PRIMARY KEY,
    code            varchar(14) NOT NULL UNIQUE CHECK (code ~ '^[0-9]{12}(0[1-9]|[1-9][0-9])$'),
    community_code  varchar(12) NOT NULL REFERENCES divisions (code) CHECK (substr(community_code, 10) <> '000'),
    name            text NOT NULL CHECK (name <> ''),
    kind            text NOT NULL DEFAULT 'comprehensive' CHECK (kind IN ('comprehensive', 'dedicated')),
    boundary        geometry(MultiPolygon, 4326) NOT NULL
                    CHECK (ST_IsValid(boundary) AND NOT ST_IsEmpty(boundary)),
    version         integer NOT NULL DEFAULT 1,
    retired_at      timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT grids_code_in_community CHECK (substr(code, 1, 12) = community_code)
);
CREATE INDEX grids_boundary_gix ON grids USING gist (boundary);
CREATE INDEX grids_community_idx ON grids (community_code);

CREATE TABLE grid_versions (
    grid_id         integer NOT NULL REFERENCES grids (id),
    version         integer NOT NULL,
    code            varchar(14) NOT NULL,
    community_code  varchar(12) NOT NULL,
    name            text NOT NULL,
    kind            text NOT NULL,
    boundary        geometry(MultiPolygon, 4326) NOT NULL,
    retired         boolean NOT NULL,
    valid_from      timestamptz NOT NULL,
    valid_to        timestamptz,
    author          text NOT NULL,
    reason          text NOT NULL,
    PRIMARY KEY (grid_id, version)
);
CREATE INDEX grid_versions_time_idx ON grid_versions (valid_from, valid_to);

CREATE FUNCTION gridgov_actor() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(current_setting('gridgov.actor', true), ''), session_user::text) $$;
CREATE FUNCTION gridgov_reason() RETURNS text LANGUAGE sql STABLE AS
$$ SELECT coalesce(nullif(current_setting('gridgov.reason', true), ''), 'not stated') $$;

CREATE FUNCTION grids_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.code, NEW.name, NEW.kind, NEW.retired_at, NEW.community_code)
           IS DISTINCT FROM (OLD.code, OLD.name, OLD.kind, OLD.retired_at, OLD.community_code)
       OR NOT ST_Equals(NEW.boundary, OLD.boundary) THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    ELSE
        NEW.version := OLD.version;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER grids_bump_version BEFORE UPDATE ON grids FOR EACH ROW EXECUTE FUNCTION grids_bump_version();

CREATE FUNCTION grids_record_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NULL;
    END IF;
    UPDATE grid_versions SET valid_to = now() WHERE grid_id = NEW.id AND valid_to IS NULL;
    INSERT INTO grid_versions (grid_id, version, code, community_code, name, kind, boundary, retired,
                               valid_from, author, reason)
    VALUES (NEW.id, NEW.version, NEW.code, NEW.community_code, NEW.name, NEW.kind, NEW.boundary,
            NEW.retired_at IS NOT NULL, now(), gridgov_actor(), gridgov_reason());
    IF TG_OP = 'UPDATE' AND NEW.code IS DISTINCT FROM OLD.code THEN
        UPDATE buildings SET grid_id = grid_id WHERE grid_id = NEW.id;  -- recompute building codes
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER grids_record_version AFTER INSERT OR UPDATE ON grids
    FOR EACH ROW EXECUTE FUNCTION grids_record_version();

CREATE FUNCTION refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is refused: %', TG_OP, TG_TABLE_NAME, TG_ARGV[0]
        USING ERRCODE = 'integrity_constraint_violation';
END $$;
CREATE TRIGGER grids_no_delete BEFORE DELETE ON grids
    FOR EACH ROW EXECUTE FUNCTION refuse_change('retire the grid instead (set retired_at)');

-- Micro-grids: about five buildings inside one grid; no national code, numbered within the grid.
CREATE TABLE micro_grids (
    id          serial PRIMARY KEY,
    grid_id     integer NOT NULL REFERENCES grids (id),
    seq         integer NOT NULL CHECK (seq BETWEEN 1 AND 999),
    name        text,
    boundary    geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(boundary) AND NOT ST_IsEmpty(boundary)),
    head_name   text,
    head_phone  varchar(11) CHECK (head_phone ~ '^1[0-9]{10}$'),
    UNIQUE (grid_id, seq)
);
CREATE INDEX micro_grids_boundary_gix ON micro_grids USING gist (boundary);

-- Buildings: the 19-digit code (grid code 14 + 5-digit number) is derived by trigger, never typed.
CREATE TABLE buildings (
    id                   bigserial PRIMARY KEY,
    origin               text NOT NULL DEFAULT 'manual',
    origin_ref           text NOT NULL DEFAULT gen_random_uuid()::text,
    community_code       varchar(12) REFERENCES divisions (code),
    grid_id              integer REFERENCES grids (id),
    micro_grid_id        integer REFERENCES micro_grids (id),
    number               integer CHECK (number BETWEEN 1 AND 99999),
    code                 varchar(19) UNIQUE CHECK (code ~ '^[0-9]{19}$'),
    name                 text,
    footprint            geometry(MultiPolygon, 4326) NOT NULL
                         CHECK (ST_IsValid(footprint) AND NOT ST_IsEmpty(footprint)),
    levels               smallint CHECK (levels BETWEEN 1 AND 200),
    height_m             real CHECK (height_m > 0 AND height_m < 1000),
    use                  text NOT NULL DEFAULT 'residential'
                         CHECK (use IN ('residential', 'commercial', 'industrial', 'public', 'mixed', 'other')),
    urban_village        boolean NOT NULL DEFAULT false,
    units                smallint CHECK (units >= 0),
    households           integer CHECK (households >= 0),
    residents            integer CHECK (residents >= 0),
    occupancy_estimated  boolean NOT NULL DEFAULT false,
    UNIQUE (origin, origin_ref),
    CONSTRAINT buildings_number_needs_grid CHECK (number IS NULL OR grid_id IS NOT NULL)
);
CREATE INDEX buildings_footprint_gix ON buildings USING gist (footprint);
CREATE INDEX buildings_grid_idx ON buildings (grid_id);
CREATE INDEX buildings_community_idx ON buildings (community_code);

CREATE FUNCTION buildings_derive_code() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    g record;
BEGIN
    IF NEW.grid_id IS NULL THEN
        NEW.code := NULL;
        IF NEW.micro_grid_id IS NOT NULL THEN
            RAISE EXCEPTION 'building % has a micro-grid but no grid', NEW.id USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END IF;
    SELECT code, community_code INTO g FROM grids WHERE id = NEW.grid_id;
    IF NEW.community_code IS NOT NULL AND NEW.community_code <> g.community_code THEN
        RAISE EXCEPTION 'building % lies in community % but grid % belongs to community %',
            NEW.id, NEW.community_code, g.code, g.community_code USING ERRCODE = 'check_violation';
    END IF;
    NEW.community_code := g.community_code;
    NEW.code := CASE WHEN NEW.number IS NULL THEN NULL ELSE g.code || lpad(NEW.number::text, 5, '0') END;
    IF NEW.micro_grid_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM micro_grids WHERE id = NEW.micro_grid_id AND grid_id = NEW.grid_id) THEN
        RAISE EXCEPTION 'micro-grid % is not inside grid %', NEW.micro_grid_id, g.code
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER buildings_derive_code BEFORE INSERT OR UPDATE ON buildings
    FOR EACH ROW EXECUTE FUNCTION buildings_derive_code();

-- Households: personal fields are stored whole so that they can be masked on the way out.
CREATE TABLE households (
    id              bigserial PRIMARY KEY,
    building_id     bigint NOT NULL REFERENCES buildings (id),
    unit            text NOT NULL DEFAULT '1',
    floor           smallint CHECK (floor BETWEEN -5 AND 200),
    room            text NOT NULL,
    residents       smallint NOT NULL DEFAULT 1 CHECK (residents BETWEEN 0 AND 50),
    head_name       text,
    head_id_number  varchar(18) CHECK (head_id_number ~ '^[0-9]{17}[0-9X]$'),
    head_phone      varchar(11) CHECK (head_phone ~ '^1[0-9]{10}$'),
    tags            text[] NOT NULL DEFAULT '{}' CHECK (tags <@ ARRAY[{tags}]::text[]),
    UNIQUE (building_id, unit, room)
);

-- Enclosures (围合) and checkpoints (卡口).
CREATE TABLE enclosures (
    id              serial PRIMARY KEY,
    name            text NOT NULL CHECK (name <> ''),
    kind            text NOT NULL DEFAULT 'estate'
                    CHECK (kind IN ('estate', 'urban_village', 'community', 'industrial', 'other')),
    community_code  varchar(12) REFERENCES divisions (code),
    boundary        geometry(Polygon, 4326) NOT NULL CHECK (ST_IsValid(boundary) AND NOT ST_IsEmpty(boundary))
);
CREATE INDEX enclosures_boundary_gix ON enclosures USING gist (boundary);

CREATE TABLE checkpoints (
    id              serial PRIMARY KEY,
    enclosure_id    integer REFERENCES enclosures (id),
    name            text NOT NULL CHECK (name <> ''),
    location        geometry(Point, 4326) NOT NULL,
    kind            text NOT NULL DEFAULT 'pedestrian' CHECK (kind IN ('pedestrian', 'vehicle', 'both')),
    status          text NOT NULL DEFAULT 'unstaffed' CHECK (status IN ('staffed', 'sealed', 'unstaffed')),
    opening_hours   text NOT NULL DEFAULT '24/7',
    staff_count     smallint NOT NULL DEFAULT 0 CHECK (staff_count >= 0),
    CONSTRAINT checkpoints_staffed_has_staff CHECK (status <> 'staffed' OR staff_count > 0)
);
CREATE INDEX checkpoints_location_gix ON checkpoints USING gist (location);

-- Street network, routable with pgRouting: source/target are street_nodes ids.
CREATE TABLE street_nodes (
    id          bigserial PRIMARY KEY,
    origin      text NOT NULL DEFAULT 'manual',
    origin_ref  text NOT NULL DEFAULT gen_random_uuid()::text,
    location    geometry(Point, 4326) NOT NULL,
    UNIQUE (origin, origin_ref)
);
CREATE INDEX street_nodes_location_gix ON street_nodes USING gist (location);

CREATE TABLE street_edges (
    id          bigserial PRIMARY KEY,
    origin      text NOT NULL DEFAULT 'manual',
    origin_ref  text NOT NULL DEFAULT gen_random_uuid()::text,
    source      bigint NOT NULL REFERENCES street_nodes (id),
    target      bigint NOT NULL REFERENCES street_nodes (id),
    osm_way_id  bigint,
    highway     text,
    name        text,
    oneway      boolean NOT NULL DEFAULT false,
    foot        boolean NOT NULL DEFAULT true,
    car         boolean NOT NULL DEFAULT true,
    length_m    double precision NOT NULL CHECK (length_m >= 0),
    geom        geometry(LineString, 4326) NOT NULL,
    UNIQUE (origin, origin_ref)
);
CREATE INDEX street_edges_geom_gix ON street_edges USING gist (geom);
CREATE INDEX street_edges_source_idx ON street_edges (source);
CREATE INDEX street_edges_target_idx ON street_edges (target);

-- pgRouting inputs: walking ignores one-way rules; driving honours them (reverse_cost < 0 = closed).
CREATE VIEW walk_edges AS
    SELECT id, source, target, length_m AS cost, length_m AS reverse_cost, geom FROM street_edges WHERE foot;
CREATE VIEW drive_edges AS
    SELECT id, source, target, length_m AS cost,
           CASE WHEN oneway THEN -1 ELSE length_m END AS reverse_cost, geom
    FROM street_edges WHERE car;

-- Users, roles, grid assignments, bearer tokens (stored as SHA-256 digests only).
CREATE TABLE users (
    id              serial PRIMARY KEY,
    username        text NOT NULL UNIQUE CHECK (username ~ '^[A-Za-z0-9_.-]{3,64}$'),
    display_name    text,
    password_hash   text NOT NULL,
    role            text NOT NULL CHECK (role IN ('admin', 'planner', 'inspector', 'grid_worker', 'viewer')),
    scope_code      varchar(12) REFERENCES divisions (code),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE grid_assignments (
    user_id  integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    grid_id  integer NOT NULL REFERENCES grids (id),
    duty     text NOT NULL DEFAULT 'worker' CHECK (duty IN ('leader', 'worker')),
    PRIMARY KEY (user_id, grid_id)
);

CREATE TABLE auth_tokens (
    token_hash  bytea PRIMARY KEY,
    user_id     integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    revoked_at  timestamptz
);

-- Audit log: append-only (updates and deletes are refused by trigger).
CREATE TABLE audit_log (
    id           bigserial PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT clock_timestamp(),
    username     text,
    role         text,
    action       text NOT NULL,
    object_type  text,
    object_id    text,
    fields       text[] NOT NULL DEFAULT '{}',
    purpose      text,
    result       text NOT NULL DEFAULT 'ok',
    client_addr  text
);
CREATE INDEX audit_log_at_idx ON audit_log (at);
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the audit log is append-only');
""".replace("{tags}", ", ".join(f"'{t}'" for t in HOUSEHOLD_TAGS))

DOWNGRADE = """
DROP TABLE IF EXISTS audit_log, auth_tokens, grid_assignments, users, street_edges, street_nodes,
    checkpoints, enclosures, households, buildings, micro_grids, grid_versions, grids, divisions CASCADE;
DROP VIEW IF EXISTS walk_edges, drive_edges;
DROP FUNCTION IF EXISTS buildings_derive_code, refuse_change, grids_record_version, grids_bump_version,
    gridgov_reason, gridgov_actor;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
