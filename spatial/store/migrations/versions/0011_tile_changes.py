"""Tiles: every write to a drawn table announces the area it changed, from the database itself.

Map tiles are cached per process (``tiles.cache``). Until now each caller had to remember to invalidate the
tiles of what it wrote; checkpoint, enclosure and opening writes, building and street imports and the occupancy
estimate did not. Now a statement-level trigger on each drawn table computes the extent of the rows the
statement inserted, updated (before and after) or deleted, and

* sends it on the ``gridgov_tiles`` channel (``pg_notify``: delivered to every listening server process when the
  transaction commits, never if it rolls back), as ``{"boxes": [[west, south, east, north], ...], "layers":
  [...] | null}`` in EPSG:4326 degrees (``null``: every layer);
* appends the same change to the transaction-local setting ``gridgov.tile_changes`` (a JSON array of those
  objects), which the writing process reads just before it commits so its own cache drops the tiles
  synchronously (:func:`tiles.cache.hear_own_commits`), not a moment later through its listener. Identical
  changes are kept once; past 64 the list collapses into one box over all of them, every layer.

Statement-level triggers with transition tables cost one aggregate per statement, not one call per row: a
100,000-building ``COPY`` sends one notification. ``TRUNCATE`` announces the whole world.

Which layers a table feeds (see ``spatial.store.layers.LAYERS`` and ``tiles/sql.py``):

==============  ======================================  ==============================================
table           geometry of a changed row               tile layers
==============  ======================================  ==============================================
divisions       boundary                                divisions
grids           boundary                                all (grid codes and totals are drawn on others)
micro_grids     boundary                                micro_grids
buildings       footprint                               buildings, households, grids (per-grid totals)
households      its building's footprint                households
street_edges    geom                                    streets
enclosures      boundary                                enclosures
checkpoints     location                                checkpoints
==============  ======================================  ==============================================

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# table -> (SQL of the extent over the transition table named %s, layers or None for all)
DRAWN = {
    "divisions": ("SELECT ST_Extent(boundary) FROM %s", ["divisions"]),
    "grids": ("SELECT ST_Extent(boundary) FROM %s", None),
    "micro_grids": ("SELECT ST_Extent(boundary) FROM %s", ["micro_grids"]),
    "buildings": ("SELECT ST_Extent(footprint) FROM %s", ["buildings", "households", "grids"]),
    "households": ("SELECT ST_Extent(b.footprint) FROM %s h JOIN buildings b ON b.id = h.building_id",
                   ["households"]),
    "street_edges": ("SELECT ST_Extent(geom) FROM %s", ["streets"]),
    "enclosures": ("SELECT ST_Extent(boundary) FROM %s", ["enclosures"]),
    "checkpoints": ("SELECT ST_Extent(location) FROM %s", ["checkpoints"]),
}

FUNCTION = r"""
CREATE OR REPLACE FUNCTION gridgov_tiles_changed() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    extent_sql text := TG_ARGV[0];
    layers jsonb := CASE WHEN TG_ARGV[1] = '*' THEN 'null'::jsonb ELSE to_jsonb(string_to_array(TG_ARGV[1], ',')) END;
    boxes jsonb := '[]'::jsonb;
    box box2d;
    change jsonb;
    pending jsonb;
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        boxes := '[[-180, -90, 180, 90]]'::jsonb;
    ELSE
        IF TG_OP IN ('UPDATE', 'DELETE') THEN
            EXECUTE format(extent_sql, 'old_rows') INTO box;
            IF box IS NOT NULL THEN
                boxes := boxes || jsonb_build_array(jsonb_build_array(ST_XMin(box), ST_YMin(box), ST_XMax(box), ST_YMax(box)));
            END IF;
        END IF;
        IF TG_OP IN ('INSERT', 'UPDATE') THEN
            EXECUTE format(extent_sql, 'new_rows') INTO box;
            IF box IS NOT NULL THEN
                boxes := boxes || jsonb_build_array(jsonb_build_array(ST_XMin(box), ST_YMin(box), ST_XMax(box), ST_YMax(box)));
            END IF;
        END IF;
    END IF;
    IF jsonb_array_length(boxes) = 0 THEN
        RETURN NULL;
    END IF;
    change := jsonb_build_object('boxes', boxes, 'layers', layers);
    PERFORM pg_notify('gridgov_tiles', change::text);
    pending := coalesce(nullif(current_setting('gridgov.tile_changes', true), ''), '[]')::jsonb;
    IF NOT pending @> jsonb_build_array(change) THEN
        pending := pending || jsonb_build_array(change);
    END IF;
    IF jsonb_array_length(pending) > 64 THEN  -- a long transaction of many statements: one box, every layer
        SELECT jsonb_build_array(jsonb_build_object('boxes', jsonb_build_array(jsonb_build_array(
                   min((b->>0)::float8), min((b->>1)::float8), max((b->>2)::float8), max((b->>3)::float8))),
                   'layers', 'null'::jsonb))
        INTO pending
        FROM jsonb_array_elements(pending) c, jsonb_array_elements(c->'boxes') b;
    END IF;
    PERFORM set_config('gridgov.tile_changes', pending::text, true);
    RETURN NULL;
END
$fn$;
"""


def _triggers(table: str) -> list[str]:
    extent_sql, layers = DRAWN[table]
    args = "'" + extent_sql.replace("'", "''") + "', '" + (",".join(layers) if layers else "*") + "'"
    name = f"{table}_tiles"
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})",
        f"CREATE TRIGGER {name}_update AFTER UPDATE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS old_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})",
        f"CREATE TRIGGER {name}_truncate AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION gridgov_tiles_changed({args})",
    ]


def upgrade() -> None:
    op.execute(FUNCTION)
    for table in DRAWN:
        for statement in _triggers(table):
            op.execute(statement)


def downgrade() -> None:
    for table in DRAWN:
        for event in ("insert", "update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_tiles_{event} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS gridgov_tiles_changed()")
