"""Division history: every version of a subdistrict or community, with who changed it and why, as for grids.

* ``divisions.version`` (from 1) and ``divisions.updated_at``: bumped by ``divisions_bump_version`` (BEFORE
  UPDATE) when the level, name, English name, parent or boundary changes (``ST_Equals``, NULL-safe), kept
  otherwise — so writing a division again unchanged makes no version. Clients edit with ``If-Match`` on it.
* ``division_versions`` (code, version): one row per version, valid in [valid_from, valid_to), written by
  ``divisions_record_version`` (AFTER INSERT OR UPDATE) with ``gridgov_actor()`` / ``gridgov_reason()``
  (:func:`spatial.store.engine.acting_as`), like ``grid_versions``.
* Divisions already stored get their version 1 in the history (author ``migration``).

The existing table and its columns are unchanged.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

UPGRADE = r"""
ALTER TABLE divisions ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE divisions ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

CREATE TABLE division_versions (
    code         varchar(12) NOT NULL REFERENCES divisions (code),
    version      integer NOT NULL CHECK (version > 0),
    level        text NOT NULL,
    name         text NOT NULL,
    name_en      text,
    parent_code  varchar(12),
    boundary     geometry(MultiPolygon, 4326),
    valid_from   timestamptz NOT NULL,
    valid_to     timestamptz,
    author       text NOT NULL,
    reason       text NOT NULL,
    PRIMARY KEY (code, version)
);
CREATE INDEX division_versions_time_idx ON division_versions (valid_from, valid_to);

INSERT INTO division_versions (code, version, level, name, name_en, parent_code, boundary, valid_from, author, reason)
SELECT code, 1, level, name, name_en, parent_code, boundary, now(), 'migration', 'history starts (migration 0013)'
FROM divisions;

CREATE FUNCTION divisions_bump_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (NEW.level, NEW.name, NEW.name_en, NEW.parent_code) IS DISTINCT FROM
           (OLD.level, OLD.name, OLD.name_en, OLD.parent_code)
       OR (NEW.boundary IS NULL) <> (OLD.boundary IS NULL)
       OR (NEW.boundary IS NOT NULL AND NOT ST_Equals(NEW.boundary, OLD.boundary)) THEN
        NEW.version := OLD.version + 1;
        NEW.updated_at := now();
    ELSE
        NEW.version := OLD.version;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER divisions_bump_version BEFORE UPDATE ON divisions
    FOR EACH ROW EXECUTE FUNCTION divisions_bump_version();

CREATE FUNCTION divisions_record_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NULL;
    END IF;
    UPDATE division_versions SET valid_to = now() WHERE code = NEW.code AND valid_to IS NULL;
    INSERT INTO division_versions (code, version, level, name, name_en, parent_code, boundary, valid_from,
                                   author, reason)
    VALUES (NEW.code, NEW.version, NEW.level, NEW.name, NEW.name_en, NEW.parent_code, NEW.boundary, now(),
            gridgov_actor(), gridgov_reason());
    RETURN NULL;
END $$;
CREATE TRIGGER divisions_record_version AFTER INSERT OR UPDATE ON divisions
    FOR EACH ROW EXECUTE FUNCTION divisions_record_version();
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS divisions_record_version ON divisions;
DROP TRIGGER IF EXISTS divisions_bump_version ON divisions;
DROP FUNCTION IF EXISTS divisions_record_version();
DROP FUNCTION IF EXISTS divisions_bump_version();
DROP TABLE IF EXISTS division_versions;
ALTER TABLE divisions DROP COLUMN IF EXISTS updated_at;
ALTER TABLE divisions DROP COLUMN IF EXISTS version;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
