"""One network (一张网, issue 16 §2): departments, their own grids as named layers, the places they inspect.

* ``departments``: an organisation with a unified social credit code (统一社会信用代码, GB 32100: 18 characters, its
  check character verified by the importer, the pattern here), a unique name and the office line (an organisation's
  telephone, not a person's).
* ``department_grids``: the department's own grids, one named layer per department (``layer``: e.g. 市场监管网格).
  Each import of a department's layer replaces the current one: the rows in force get ``valid_to`` (the import's
  time) and the new rows start then, so past layers are kept (``valid_to`` NULL: current). Boundary EPSG:4326
  MultiPolygon, ``area_m2`` in the deployment's metric CRS when imported; ``scope_code`` the smallest division holding
  every community it touches (who may replace it); a contact person (name, phone: personal data, masked on reads).
* ``places``: what departments inspect: 三小场所 (``shop`` 小商店, ``restaurant`` 小餐饮, ``hotel`` 小旅馆),
  ``enterprise`` (with its credit code and ``reopened``: back at work, 复工复产; NULL unknown), ``school``,
  ``clinic``; a point (EPSG:4326) tied to its building and grid and community; keyed on (origin, origin_ref): the
  sheet's name and the place's credit code or name + address, so importing a sheet again updates, not duplicates.
* ``cases.department_grid_ids``: the department grids in force where a case lies, recorded by the database when the
  case is reported or moved (trigger ``cases_department_grids``), so a case routes to the departments' grids of its
  place as they were then.
* Tile triggers (the function of migration 0011) on ``places``: layer ``places``.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03
"""

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

PLACE_KINDS = ("shop", "restaurant", "hotel", "enterprise", "school", "clinic")
CREDIT = "'^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$'"

UPGRADE = f"""
CREATE TABLE departments (
    credit_code    char(18) PRIMARY KEY CHECK (credit_code ~ {CREDIT}),
    name           text NOT NULL UNIQUE CHECK (btrim(name) <> '' AND length(name) <= 100),
    contact_phone  text CHECK (length(contact_phone) <= 30),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE department_grids (
    id               serial PRIMARY KEY,
    department_code  char(18) NOT NULL REFERENCES departments (credit_code),
    layer            text NOT NULL CHECK (btrim(layer) <> '' AND length(layer) <= 100),
    code             text NOT NULL CHECK (code ~ '^[0-9A-Za-z_.-]{{1,40}}$'),
    name             text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 100),
    contact_name     text CHECK (length(contact_name) <= 100),
    contact_phone    text CHECK (length(contact_phone) <= 30),
    boundary         geometry(MultiPolygon, 4326) NOT NULL CHECK (ST_IsValid(boundary) AND NOT ST_IsEmpty(boundary)),
    area_m2          double precision NOT NULL CHECK (area_m2 > 0),
    scope_code       varchar(12) NOT NULL REFERENCES divisions (code),
    valid_from       timestamptz NOT NULL DEFAULT now(),
    valid_to         timestamptz CHECK (valid_to >= valid_from),
    imported_by      text NOT NULL,
    reason           text NOT NULL CHECK (btrim(reason) <> '' AND length(reason) <= 1000)
);
CREATE UNIQUE INDEX department_grids_current ON department_grids (department_code, code) WHERE valid_to IS NULL;
CREATE INDEX department_grids_boundary_gix ON department_grids USING gist (boundary) WHERE valid_to IS NULL;
CREATE INDEX department_grids_scope_idx ON department_grids (scope_code text_pattern_ops) WHERE valid_to IS NULL;
CREATE TRIGGER department_grids_no_delete BEFORE DELETE ON department_grids
    FOR EACH ROW EXECUTE FUNCTION refuse_change('replace the layer instead (its rows are kept as history)');

CREATE TABLE places (
    id              serial PRIMARY KEY,
    kind            text NOT NULL CHECK (kind IN ({", ".join(f"'{k}'" for k in PLACE_KINDS)})),
    name            text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 200),
    credit_code     char(18) CHECK (credit_code ~ {CREDIT}),
    reopened        boolean CHECK (reopened IS NULL OR kind = 'enterprise'),
    address         text CHECK (length(address) <= 200),
    building_id     bigint REFERENCES buildings (id) ON DELETE SET NULL,
    grid_id         integer REFERENCES grids (id),
    community_code  varchar(12) REFERENCES divisions (code),
    location        geometry(Point, 4326) NOT NULL,
    origin          text NOT NULL,
    origin_ref      text NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (origin, origin_ref),
    CHECK (kind <> 'enterprise' OR credit_code IS NOT NULL)
);
CREATE INDEX places_location_gix ON places USING gist (location);
CREATE INDEX places_community_idx ON places (community_code text_pattern_ops);
CREATE INDEX places_grid_idx ON places (grid_id);

ALTER TABLE cases ADD COLUMN department_grid_ids integer[] NOT NULL DEFAULT '{{}}';
CREATE FUNCTION cases_department_grids() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    NEW.department_grid_ids := coalesce((SELECT array_agg(d.id ORDER BY d.department_code, d.id)
                                         FROM department_grids d
                                         WHERE d.valid_to IS NULL AND d.boundary && NEW.location
                                           AND ST_Covers(d.boundary, NEW.location)), '{{}}');
    RETURN NEW;
END
$fn$;
CREATE TRIGGER cases_department_grids BEFORE INSERT OR UPDATE OF location ON cases
    FOR EACH ROW EXECUTE FUNCTION cases_department_grids();
"""

TABLE, EXTENT_SQL, LAYERS = "places", "SELECT ST_Extent(location) FROM %s", ["places"]
EVENTS = {
    "insert": "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows",
    "update": "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows",
    "truncate": "AFTER TRUNCATE ON {table}",
}


def upgrade() -> None:
    op.execute(UPGRADE)
    args = "'" + EXTENT_SQL.replace("'", "''") + "', '" + ",".join(LAYERS) + "'"
    for event, when in EVENTS.items():
        op.execute(f"CREATE TRIGGER {TABLE}_tiles_{event} {when.format(table=TABLE)} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})")


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS cases_department_grids ON cases")
    op.execute("DROP FUNCTION IF EXISTS cases_department_grids()")
    op.execute("ALTER TABLE cases DROP COLUMN IF EXISTS department_grid_ids")
    op.execute("DROP TABLE IF EXISTS places, department_grids, departments CASCADE")
