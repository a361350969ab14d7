"""Corrections of visits as records of fact (issue 19 item 11: a visited household's sheet offers no correction).

* ``campaign_visit_corrections``: a visit's result (and note) corrected later, with the reason (required), who and
  when. Append-only like the visits themselves (migration 0004): a second correction is a new row, the history is
  every row in order.
* ``campaign_visits_current``: every visit with its *current* result = the latest correction's (by id), else the
  visit's own; its note = the latest correction's if it gave one, else the visit's. ``recorded_result`` keeps what
  the worker recorded at the door, ``corrected_at`` / ``corrected_by`` / ``correction_reason`` the latest
  correction (NULL when none). Every read that shows a visit's result reads this view.
* The counters of migration 0022 count households with a visit, not results: a correction does not touch
  ``campaign_visits`` and leaves them exact (no trigger here).
* Corrections are few (a mistaken tap): the view joins one row per corrected visit (DISTINCT ON over the index).

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03
"""

from alembic import op

revision = "0027"
down_revision = "0026"
branch_labels = None
depends_on = None
VISIT_RESULTS = ("normal", "follow_up", "vacant", "moved_out", "refused")  # as in 0004, frozen here

UPGRADE = """
CREATE TABLE campaign_visit_corrections (
    id            bigserial PRIMARY KEY,
    visit_id      bigint NOT NULL REFERENCES campaign_visits (id),
    result        text NOT NULL CHECK (result IN ({results})),
    note          text CHECK (length(note) <= 1000),
    reason        text NOT NULL CHECK (length(btrim(reason)) BETWEEN 2 AND 500),
    corrected_by  text NOT NULL,
    corrected_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX campaign_visit_corrections_visit_idx ON campaign_visit_corrections (visit_id, id DESC);
CREATE TRIGGER campaign_visit_corrections_append_only BEFORE UPDATE OR DELETE ON campaign_visit_corrections
    FOR EACH ROW EXECUTE FUNCTION refuse_change('a correction is a record of fact; correct it again instead');

CREATE VIEW campaign_visits_current AS
SELECT v.id, v.campaign_id, v.household_id, coalesce(k.result, v.result) AS result, v.result AS recorded_result,
       coalesce(k.note, v.note) AS note, v.visited_at, v.recorded_at, v.worker, v.worker_position, v.distance_m,
       v.far_from_building, k.corrected_at, k.corrected_by, k.reason AS correction_reason
FROM campaign_visits v
LEFT JOIN (SELECT DISTINCT ON (visit_id) visit_id, result, note, reason, corrected_by, corrected_at
           FROM campaign_visit_corrections ORDER BY visit_id, id DESC) k ON k.visit_id = v.id;
""".replace("{results}", ", ".join(f"'{r}'" for r in VISIT_RESULTS))


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP VIEW IF EXISTS campaign_visits_current")
    op.execute("DROP TABLE IF EXISTS campaign_visit_corrections")
