"""Patrol records (巡查记录, issue 17 §2): a grid worker's patrol as walked, with its GPS fixes, check-ins and cases.

* ``patrol_records``: one row per patrol: the worker (``worker_id``), the grid patrolled, when it started and ended,
  the datum the client declared for its fixes (``datum``: EPSG:4326 or GCJ-02) and the one the fixes fit
  (``datum_used``; ``datum_suspect`` when they differ: a GCJ-02 track sent as WGS 84), ``status`` (open, ended,
  abandoned: never ended by the worker, closed by ``gridgov patrols prune``), ``scores`` (jsonb: lanes covered,
  buildings passed, time, distance, gaps, rejected fixes; :mod:`spatial.store.patrol_records`), ``track`` (the
  matched route, EPSG:4326 MultiLineString; NULL once reduced) and ``reduced_at`` (when the track and the fixes
  were deleted after the retention period, leaving the scores). ``client_ref``: the phone's id of the patrol, so a
  start sent twice from the offline queue makes one patrol. At most one open patrol per worker.
* ``patrol_fixes``: the fixes as sent (lon, lat in the declared datum, seconds of accuracy), one per instant
  (primary key patrol + time: a batch sent twice adds nothing).
* ``patrol_checkins``: check-ins at a building or checkpoint (position in EPSG:4326, metres from the target), once
  per target and patrol.
* ``patrol_cases``: cases reported from a patrol (problems found).

No tile layer: tracks are personal data and never drawn on shared tiles.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03
"""

from alembic import op

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE patrol_records (
    id             bigserial PRIMARY KEY,
    worker_id      integer NOT NULL REFERENCES users (id),
    grid_id        integer NOT NULL REFERENCES grids (id),
    client_ref     text CHECK (client_ref ~ '^[A-Za-z0-9_-]{1,64}$'),
    datum          text NOT NULL CHECK (datum IN ('EPSG:4326', 'GCJ-02')),
    datum_used     text CHECK (datum_used IN ('EPSG:4326', 'GCJ-02')),
    datum_suspect  boolean NOT NULL DEFAULT false,
    status         text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'ended', 'abandoned')),
    started_at     timestamptz NOT NULL,
    ended_at       timestamptz,
    scores         jsonb,
    track          geometry(MultiLineString, 4326),
    reduced_at     timestamptz,
    UNIQUE (worker_id, client_ref),
    CONSTRAINT patrol_records_end_after_start CHECK (ended_at IS NULL OR ended_at >= started_at),
    CONSTRAINT patrol_records_open_has_no_end CHECK ((status = 'open') = (ended_at IS NULL)),
    CONSTRAINT patrol_records_reduced_has_no_track CHECK (reduced_at IS NULL OR track IS NULL)
);
CREATE UNIQUE INDEX patrol_records_one_open ON patrol_records (worker_id) WHERE status = 'open';
CREATE INDEX patrol_records_grid_idx ON patrol_records (grid_id, started_at);
CREATE INDEX patrol_records_ended_idx ON patrol_records (ended_at) WHERE reduced_at IS NULL;

CREATE TABLE patrol_fixes (
    patrol_id   bigint NOT NULL REFERENCES patrol_records (id) ON DELETE CASCADE,
    at          timestamptz NOT NULL,
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    accuracy_m  real CHECK (accuracy_m >= 0),
    PRIMARY KEY (patrol_id, at)
);

CREATE TABLE patrol_checkins (
    id          bigserial PRIMARY KEY,
    patrol_id   bigint NOT NULL REFERENCES patrol_records (id) ON DELETE CASCADE,
    kind        text NOT NULL CHECK (kind IN ('building', 'checkpoint')),
    target_id   bigint NOT NULL,
    at          timestamptz NOT NULL,
    location    geometry(Point, 4326),
    distance_m  real NOT NULL CHECK (distance_m >= 0),
    UNIQUE (patrol_id, kind, target_id)
);

CREATE TABLE patrol_cases (
    patrol_id  bigint NOT NULL REFERENCES patrol_records (id) ON DELETE CASCADE,
    case_id    bigint NOT NULL UNIQUE REFERENCES cases (id),
    PRIMARY KEY (patrol_id, case_id)
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS patrol_cases, patrol_checkins, patrol_fixes, patrol_records CASCADE")
