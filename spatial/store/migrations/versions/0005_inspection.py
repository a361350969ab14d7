"""Inspection: openings of enclosure perimeters, their state, checkpoint schedules, opening scans.

* ``openings``: a point on an enclosure's perimeter (EPSG:4326, on the exterior ring) where a street or footpath
  crosses it (``origin`` 'detected') or a gate a planner added by hand ('manual', or 'checkpoint' when made for a
  stored checkpoint that no street crosses). Its state is one of

  - ``open``: open and unguarded (a coverage gap);
  - ``sealed``: closed by a barrier (``barrier_kind``); ``barrier`` is the stretch of the perimeter it closes
    (``width_m`` centred on the opening, measured in the metric CRS) and ``barrier_m`` that stretch's length
    in metres measured along the perimeter;
  - ``checkpoint``: kept as a checkpoint (卡口), ``checkpoint_id`` → ``checkpoints`` (kind, staff count,
    ``opening_hours``). The gate's checkpoint record stays linked when the opening is later sealed or opened.

  Openings are never deleted by the application: ``deleted_at`` marks one a planner removed, so that a later
  scan does not bring a detected one back. ``version`` counts edits (optimistic concurrency).
* ``enclosure_scans``: when the openings of an enclosure were last detected, by whom, and the boundary as it
  was then (a redrawn enclosure needs a new scan).
* ``checkpoint_schedules``: the staffed minutes of the week of a checkpoint, parsed from its
  ``opening_hours``: an ``int4multirange`` of minutes since Monday 00:00 local time (0–10080). A change of
  ``checkpoints.opening_hours`` deletes the row (trigger), so a stored schedule is never stale.
  ``gridgov_minute_of_week(t)`` gives the minute of the week of an instant in Asia/Shanghai time, so
  ``staffed @> gridgov_minute_of_week(now())`` asks "staffed now?".

Revision ID: 0005
Revises: 0001
Create Date: 2026-11-24
"""

from alembic import op

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = None

OPENING_STATUSES = ("open", "sealed", "checkpoint")
OPENING_ORIGINS = ("detected", "manual", "checkpoint")
BARRIER_KINDS = ("water_barrier", "fence", "wall", "locked_gate", "other", "unrecorded")


def _values(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


UPGRADE = f"""
CREATE TABLE enclosure_scans (
    enclosure_id    integer PRIMARY KEY REFERENCES enclosures (id) ON DELETE CASCADE,
    scanned_at      timestamptz NOT NULL DEFAULT now(),
    scanned_by      text NOT NULL DEFAULT gridgov_actor(),
    boundary        geometry(Polygon, 4326) NOT NULL,
    crossings       integer NOT NULL CHECK (crossings >= 0)
);

CREATE TABLE openings (
    id                  serial PRIMARY KEY,
    enclosure_id        integer NOT NULL REFERENCES enclosures (id) ON DELETE CASCADE,
    location            geometry(Point, 4326) NOT NULL,
    perimeter_fraction  double precision NOT NULL CHECK (perimeter_fraction BETWEEN 0 AND 1),
    origin              text NOT NULL CHECK (origin IN ({_values(OPENING_ORIGINS)})),
    street_name         text CHECK (length(street_name) <= 200),
    highway             text,
    street_edge_ids     bigint[] NOT NULL DEFAULT '{{}}',
    width_m             real NOT NULL CHECK (width_m > 0 AND width_m <= 200),
    status              text NOT NULL DEFAULT 'open' CHECK (status IN ({_values(OPENING_STATUSES)})),
    barrier_kind        text CHECK (barrier_kind IN ({_values(BARRIER_KINDS)})),
    barrier             geometry(LineString, 4326),
    barrier_m           real CHECK (barrier_m >= 0),
    checkpoint_id       integer REFERENCES checkpoints (id),
    note                text CHECK (length(note) <= 500),
    version             integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    updated_by          text NOT NULL DEFAULT gridgov_actor(),
    deleted_at          timestamptz,
    CONSTRAINT openings_sealed_has_barrier CHECK (
        (status = 'sealed') = (barrier_kind IS NOT NULL AND barrier IS NOT NULL AND barrier_m IS NOT NULL)),
    CONSTRAINT openings_checkpoint_is_linked CHECK (status <> 'checkpoint' OR checkpoint_id IS NOT NULL)
);
CREATE INDEX openings_location_gix ON openings USING gist (location);
CREATE INDEX openings_enclosure_idx ON openings (enclosure_id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX openings_one_per_checkpoint ON openings (checkpoint_id)
    WHERE checkpoint_id IS NOT NULL AND deleted_at IS NULL;

CREATE TABLE checkpoint_schedules (
    checkpoint_id    integer PRIMARY KEY REFERENCES checkpoints (id) ON DELETE CASCADE,
    opening_hours    text NOT NULL,
    staffed          int4multirange NOT NULL CHECK (staffed <@ int4multirange(int4range(0, 10080))),
    staffed_minutes  integer NOT NULL CHECK (staffed_minutes BETWEEN 0 AND 10080),
    parsed_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX checkpoint_schedules_staffed_gix ON checkpoint_schedules USING gist (staffed);

CREATE FUNCTION checkpoint_schedules_forget() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM checkpoint_schedules WHERE checkpoint_id = NEW.id AND opening_hours IS DISTINCT FROM NEW.opening_hours;
    RETURN NULL;
END $$;
CREATE TRIGGER checkpoint_schedules_forget AFTER UPDATE OF opening_hours ON checkpoints
    FOR EACH ROW EXECUTE FUNCTION checkpoint_schedules_forget();

CREATE FUNCTION gridgov_minute_of_week(t timestamptz, tz text DEFAULT 'Asia/Shanghai') RETURNS integer
LANGUAGE sql STABLE AS $$
    SELECT ((extract(isodow FROM t AT TIME ZONE tz)::int - 1) * 1440
            + extract(hour FROM t AT TIME ZONE tz)::int * 60 + extract(minute FROM t AT TIME ZONE tz)::int)
$$;
"""

DOWNGRADE = """
DROP TABLE IF EXISTS checkpoint_schedules, openings, enclosure_scans CASCADE;
DROP TRIGGER IF EXISTS checkpoint_schedules_forget ON checkpoints;
DROP FUNCTION IF EXISTS checkpoint_schedules_forget, gridgov_minute_of_week(timestamptz, text);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
