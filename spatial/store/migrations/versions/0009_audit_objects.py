"""Audit: the households a row concerns, searchable ("who saw household X").

* ``audit_log.household_ids bigint[]``: the ids of the households whose data the action read, revealed,
  exported or changed (a nearby list, an unvisited list, a coverage report's households, a reveal, a visit, a
  community export); empty for rows about anything else. ``object_id`` keeps what it held (one id, or a
  comma-joined list for a read; the community code for an export), so earlier answers read as before.
* A GIN index on it answers ``household_ids @> ARRAY[<id>]`` (one household's rows) without reading the log.
* Rows written before: a household row's ``object_id`` (an id or a comma-joined list of ids) is copied into
  the array. Community exports stored only the community code, and which households a community held then is
  not recorded: those rows stay without ids (search them by ``object_id`` = community code).

The log is append-only (a row trigger refuses UPDATE): the copy runs with that trigger disabled, inside this
migration's transaction only, by the schema owner.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE audit_log ADD COLUMN household_ids bigint[] NOT NULL DEFAULT '{}';
ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE audit_log SET household_ids = string_to_array(object_id, ',')::bigint[]
WHERE object_type = 'household' AND object_id ~ '^[0-9]{1,18}(,[0-9]{1,18})*$';
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
CREATE INDEX audit_log_households_idx ON audit_log USING gin (household_ids);
"""

DOWNGRADE = """
DROP INDEX IF EXISTS audit_log_households_idx;
ALTER TABLE audit_log DROP COLUMN IF EXISTS household_ids;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
