"""The population ledger (实有人口): persons in households, ID and phone numbers sealed at rest.

* ``persons``: one row per *residence* of a person in a household: who (name, gender), their relation to the head
  of household, registered / floating / foreign, move-in and move-out dates, per-person tags (with the dates of a
  home isolation). A person who moves gets their row closed (``moved_out``, ``moved_out_reason`` 'moved') and a
  new row in the new household; one absent from a newer ledger gets it closed with 'left': history is kept, rows
  are never deleted by an import. At most one *current* row (``moved_out IS NULL``) per ID number, and at most
  one current head per household.
* ID and phone numbers are stored three ways, none of them plaintext: ``*_sealed`` (AES-256-GCM under a key kept
  in a file outside the database, :mod:`spatial.personal_keys`), ``*_hash`` (HMAC-SHA256 under a key derived
  from it: exact lookup and duplicates) and ``*_masked`` (the display form, ``440304********1234``,
  ``138****5678``), so masked reads need no key.
* ``households.head_id_number`` / ``head_phone`` may now hold the masked form: the importer writes the masked
  values of a ledger household's head there (nearby and campaign lists keep working), and a reveal opens the
  sealed ones from ``persons``. Plain values written before stay valid.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

RELATIONS = ("head", "spouse", "child", "parent", "other")
KINDS = ("registered", "floating", "foreign")
TAGS = ("elderly_alone", "elderly", "disabled", "home_isolation", "chronic_illness", "pregnant", "minor_unaccompanied",
        "low_income", "veteran", "special_care", "key_person")
REASONS = ("moved", "left")


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


UPGRADE = f"""
CREATE TABLE persons (
    id                 bigserial PRIMARY KEY,
    household_id       bigint NOT NULL REFERENCES households (id),
    name               text NOT NULL CHECK (name <> '' AND length(name) <= 100),
    gender             text CHECK (gender IN ('male', 'female')),
    relation           text NOT NULL DEFAULT 'other' CHECK (relation IN ({_list(RELATIONS)})),
    kind               text NOT NULL DEFAULT 'registered' CHECK (kind IN ({_list(KINDS)})),
    id_number_sealed   bytea NOT NULL,
    id_number_hash     bytea NOT NULL CHECK (length(id_number_hash) = 32),
    id_number_masked   text NOT NULL,
    phone_sealed       bytea,
    phone_hash         bytea CHECK (length(phone_hash) = 32),
    phone_masked       text,
    tags               text[] NOT NULL DEFAULT '{{}}' CHECK (tags <@ ARRAY[{_list(TAGS)}]::text[]),
    isolation_from     date,
    isolation_to       date CHECK (isolation_to >= isolation_from),
    moved_in           date,
    moved_out          date CHECK (moved_out >= moved_in),
    moved_out_reason   text CHECK (moved_out_reason IN ({_list(REASONS)})),
    origin             text NOT NULL DEFAULT 'manual',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    CHECK ((phone_sealed IS NULL) = (phone_hash IS NULL) AND (phone_hash IS NULL) = (phone_masked IS NULL)),
    CHECK ((moved_out IS NULL) = (moved_out_reason IS NULL))
);
CREATE UNIQUE INDEX persons_current_id_number ON persons (id_number_hash) WHERE moved_out IS NULL;
CREATE UNIQUE INDEX persons_one_current_head ON persons (household_id) WHERE relation = 'head' AND moved_out IS NULL;
CREATE INDEX persons_id_number_hash ON persons (id_number_hash);
CREATE INDEX persons_phone_hash ON persons (phone_hash) WHERE phone_hash IS NOT NULL;
CREATE INDEX persons_household ON persons (household_id);

ALTER TABLE households DROP CONSTRAINT households_head_id_number_check,
    ADD CONSTRAINT households_head_id_number_check
        CHECK (head_id_number ~ '^[0-9]{{17}}[0-9X]$' OR head_id_number ~ '^[0-9]{{6}}[*]{{8}}[0-9]{{3}}[0-9X]$');
ALTER TABLE households DROP CONSTRAINT households_head_phone_check,
    ADD CONSTRAINT households_head_phone_check
        CHECK (head_phone ~ '^1[0-9]{{10}}$' OR head_phone ~ '^1[0-9]{{2}}[*]{{4}}[0-9]{{4}}$');
"""

DOWNGRADE = r"""
DROP TABLE IF EXISTS persons;
UPDATE households SET head_id_number = NULL WHERE head_id_number LIKE '%*%';
UPDATE households SET head_phone = NULL WHERE head_phone LIKE '%*%';
ALTER TABLE households DROP CONSTRAINT households_head_id_number_check,
    ADD CONSTRAINT households_head_id_number_check CHECK (head_id_number ~ '^[0-9]{17}[0-9X]$');
ALTER TABLE households DROP CONSTRAINT households_head_phone_check,
    ADD CONSTRAINT households_head_phone_check CHECK (head_phone ~ '^1[0-9]{10}$');
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
