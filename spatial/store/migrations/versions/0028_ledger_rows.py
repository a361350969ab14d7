"""The ledger row a current person was written from, so an unchanged row is recognised without checking it again
(issue 14: re-importing an unchanged 1,000,000-row ledger in under a minute).

* ``persons.ledger_row``: 16 bytes, the keyed fingerprint of the spreadsheet row (its cells, the file's header,
  the mapping and the version of the checks; :func:`spatial.io.residents.row_fingerprint`) that last wrote this
  row; NULL for rows written another way. Keyed with the personal-data key (an unkeyed hash of a row holding an ID
  number could be reversed by trying every ID number).
* ``persons_forget_ledger_row``: any other update of the row (a ledger edit on the spot, a move, a reseal under a
  new key) clears it, so the next import checks that row in full again. Only a write that sets a new fingerprint
  keeps one.
* ``persons_bump_household`` (migration 0019) leaves the households' versions to the writer when the transaction
  says so (``gridgov.household_versions`` = 'by writer'): the ledger merge bumps every household it touched once,
  in the same statement that recomputes their residents, instead of once per statement.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03
"""

from alembic import op

revision = "0028"
down_revision = "0027"
branch_labels = None
depends_on = None

BUMP = """
CREATE OR REPLACE FUNCTION persons_bump_household() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN{guard}
    IF TG_OP = 'INSERT' THEN
        UPDATE households h SET version = h.version + 1 WHERE h.id IN (SELECT household_id FROM new_rows);
    ELSE
        UPDATE households h SET version = h.version + 1
        WHERE h.id IN (SELECT household_id FROM new_rows UNION SELECT household_id FROM old_rows);
    END IF;
    RETURN NULL;
END $$;
"""
"""Migration 0019's function, with ``guard`` at its start."""
GUARD = """
    IF current_setting('gridgov.household_versions', true) = 'by writer' THEN
        RETURN NULL;
    END IF;"""

UPGRADE = """
ALTER TABLE persons ADD COLUMN ledger_row bytea CHECK (length(ledger_row) = 16);
COMMENT ON COLUMN persons.ledger_row IS
    'keyed fingerprint of the ledger row that last wrote this row (NULL once anything else changes it)';

CREATE FUNCTION persons_forget_ledger_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.ledger_row := NULL;
    RETURN NEW;
END $$;
CREATE TRIGGER persons_forget_ledger_row BEFORE UPDATE ON persons FOR EACH ROW
    WHEN (OLD.ledger_row IS NOT NULL AND NEW.ledger_row IS NOT DISTINCT FROM OLD.ledger_row
          AND OLD.* IS DISTINCT FROM NEW.*)
    EXECUTE FUNCTION persons_forget_ledger_row();
""" + BUMP.format(guard=GUARD)

DOWNGRADE = BUMP.format(guard="") + """
DROP TRIGGER IF EXISTS persons_forget_ledger_row ON persons;
DROP FUNCTION IF EXISTS persons_forget_ledger_row();
ALTER TABLE persons DROP COLUMN IF EXISTS ledger_row;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
