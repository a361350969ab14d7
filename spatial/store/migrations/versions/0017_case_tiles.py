"""Tiles: writes to ``cases`` announce the area they changed, for the ``cases`` tile layer.

The same statement-level triggers as migration 0011 (function ``gridgov_tiles_changed()``, defined there), on
``cases`` with the extent of the changed rows' ``location``. Every action on a case updates its row (state,
version), so its tile drops at once; the overdue flag, which changes with the clock alone, is handled by the
tile cache's time window (``Layer.tile_window_s``), not here. Category renames (``case_categories``) are
not announced: they are rare, and the next write to a case there shows them.

The four statements are those 0011's ``_triggers`` writes, restated here: a migration does not import another
one, so that each stays as it ran.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-02
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

TABLE, EXTENT_SQL, LAYERS = "cases", "SELECT ST_Extent(location) FROM %s", ["cases"]
EVENTS = {
    "insert": "AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows",
    "update": "AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows",
    "delete": "AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows",
    "truncate": "AFTER TRUNCATE ON {table}",
}


def upgrade() -> None:
    args = "'" + EXTENT_SQL.replace("'", "''") + "', '" + ",".join(LAYERS) + "'"
    for event, when in EVENTS.items():
        op.execute(f"CREATE TRIGGER {TABLE}_tiles_{event} {when.format(table=TABLE)} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})")


def downgrade() -> None:
    for event in EVENTS:
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_tiles_{event} ON {TABLE}")
