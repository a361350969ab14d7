"""Field work: screening campaigns (排查) over grids, their target households, and door-to-door visits.

* ``campaigns``: opened by a planner over a list of grids or a division (community, subdistrict); closed, never
  deleted. ``flag_distance_m`` (metres, default 100) is how far from the building a visit may be recorded before
  it is flagged.
* ``campaign_grids``: the grids of a campaign, fixed when it opens.
* ``campaign_targets``: the households to screen, snapshotted when the campaign opens (with the grid they were in),
  so the denominator of coverage does not move when grids are redrawn later.
* ``campaign_visits``: at most one per household per campaign (``campaign_visits_once``); append-only (updates and
  deletes refused, like the audit log). The worker's position is EPSG:4326 (lon, lat); ``distance_m`` is metres
  from the position to the building footprint (0 inside), measured on geography at insert time.
* An expression GiST index on ``buildings.footprint::geography`` lets nearby queries filter (``ST_DWithin``) and
  order (KNN ``<->``) in metres with an index, never in degrees.

Revision ID: 0004
Revises: 0001
Create Date: 2026-11-23
"""

from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None

VISIT_RESULTS = ("normal", "follow_up", "vacant", "moved_out", "refused")

UPGRADE = r"""
CREATE INDEX buildings_footprint_geog_gix ON buildings USING gist ((footprint::geography));

CREATE TABLE campaigns (
    id               serial PRIMARY KEY,
    name             text NOT NULL CHECK (btrim(name) <> '' AND length(name) <= 200),
    description      text CHECK (length(description) <= 2000),
    division_code    varchar(12) REFERENCES divisions (code),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'closed')),
    flag_distance_m  real NOT NULL DEFAULT 100 CHECK (flag_distance_m > 0 AND flag_distance_m <= 5000),
    created_by       text NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    closed_at        timestamptz,
    CONSTRAINT campaigns_closed_has_time CHECK ((status = 'closed') = (closed_at IS NOT NULL))
);
CREATE TRIGGER campaigns_no_delete BEFORE DELETE ON campaigns
    FOR EACH ROW EXECUTE FUNCTION refuse_change('close the campaign instead');

CREATE TABLE campaign_grids (
    campaign_id  integer NOT NULL REFERENCES campaigns (id),
    grid_id      integer NOT NULL REFERENCES grids (id),
    PRIMARY KEY (campaign_id, grid_id)
);
CREATE INDEX campaign_grids_grid_idx ON campaign_grids (grid_id);

CREATE TABLE campaign_targets (
    campaign_id   integer NOT NULL,
    household_id  bigint NOT NULL REFERENCES households (id),
    grid_id       integer NOT NULL,
    PRIMARY KEY (campaign_id, household_id),
    FOREIGN KEY (campaign_id, grid_id) REFERENCES campaign_grids (campaign_id, grid_id)
);
CREATE INDEX campaign_targets_grid_idx ON campaign_targets (campaign_id, grid_id);
CREATE INDEX campaign_targets_household_idx ON campaign_targets (household_id);

CREATE TABLE campaign_visits (
    id                 bigserial PRIMARY KEY,
    campaign_id        integer NOT NULL,
    household_id       bigint NOT NULL,
    result             text NOT NULL CHECK (result IN ({results})),
    visited_at         timestamptz NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    note               text CHECK (length(note) <= 1000),
    worker             text NOT NULL,
    worker_position    geometry(Point, 4326) NOT NULL
                       CHECK (ST_X(worker_position) BETWEEN -180 AND 180 AND ST_Y(worker_position) BETWEEN -90 AND 90),
    distance_m         real NOT NULL CHECK (distance_m >= 0),
    far_from_building  boolean NOT NULL,
    CONSTRAINT campaign_visits_once UNIQUE (campaign_id, household_id),
    FOREIGN KEY (campaign_id, household_id) REFERENCES campaign_targets (campaign_id, household_id)
);
CREATE INDEX campaign_visits_position_gix ON campaign_visits USING gist (worker_position);
CREATE TRIGGER campaign_visits_append_only BEFORE UPDATE OR DELETE ON campaign_visits
    FOR EACH ROW EXECUTE FUNCTION refuse_change('a visit is a record of fact; it cannot be changed or removed');
""".replace("{results}", ", ".join(f"'{r}'" for r in VISIT_RESULTS))

DOWNGRADE = """
DROP TABLE IF EXISTS campaign_visits, campaign_targets, campaign_grids, campaigns CASCADE;
DROP INDEX IF EXISTS buildings_footprint_geog_gix;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
