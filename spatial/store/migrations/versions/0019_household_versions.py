"""Correcting the population ledger on the spot (动态更新): households carry a version, bumped by the database.

* ``households.version``: starts at 1 and grows by one on every UPDATE that changes the row (a row trigger), and
  on every statement that inserts or updates persons of the household (a statement trigger over the transition
  table: one UPDATE of the households concerned per statement, so a ledger import of many rows still costs one
  statement more per merge step; a key rotation, which rewrites every person, bumps every household once). An edit
  from the field page names the version it was made on (``If-Match``,
  :mod:`spatial.store.ledger_edits`): an import, another worker's correction or a recomputed head all make that
  version stale, so nothing is overwritten unseen.
* ``persons_current_household``: current residents by household, for the person counts of campaigns and the
  household sheet.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03
"""

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE households ADD COLUMN version integer NOT NULL DEFAULT 1 CHECK (version >= 1);

CREATE FUNCTION households_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.version = OLD.version THEN
        NEW.version := OLD.version + 1;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER households_bump_version BEFORE UPDATE ON households
    FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION households_bump_version();

CREATE FUNCTION persons_bump_household() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE households h SET version = h.version + 1 WHERE h.id IN (SELECT household_id FROM new_rows);
    ELSE
        UPDATE households h SET version = h.version + 1
        WHERE h.id IN (SELECT household_id FROM new_rows UNION SELECT household_id FROM old_rows);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER persons_bump_household_insert AFTER INSERT ON persons REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION persons_bump_household();
CREATE TRIGGER persons_bump_household_update AFTER UPDATE ON persons
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION persons_bump_household();

CREATE INDEX persons_current_household ON persons (household_id) WHERE moved_out IS NULL;
"""

DOWNGRADE = """
DROP INDEX IF EXISTS persons_current_household;
DROP TRIGGER IF EXISTS persons_bump_household_insert ON persons;
DROP TRIGGER IF EXISTS persons_bump_household_update ON persons;
DROP FUNCTION IF EXISTS persons_bump_household();
DROP TRIGGER IF EXISTS households_bump_version ON households;
DROP FUNCTION IF EXISTS households_bump_version();
ALTER TABLE households DROP COLUMN IF EXISTS version;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
