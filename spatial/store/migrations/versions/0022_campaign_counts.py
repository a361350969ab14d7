"""Screening counters per campaign and grid, kept by the database (issue 16 §3: the screen's figures under 1 s).

* ``campaign_grid_counts``: for every (campaign, grid) with targets, how many households are targeted and how many
  of those have a visit. The rows are written only by the statement-level triggers below, from the transition
  tables of ``campaign_targets`` (insert, delete) and ``campaign_visits`` (insert; visits are append-only, migration
  0004), so every writer, the bulk opening of a campaign over 400,000 households included, keeps them exact in its
  own transaction. Readers that need only household counts (the command centre's screen, per community) sum these
  rows instead of joining every target to its visit; what counts persons or flags still reads the targets.
* Concurrency: two visits in the same (campaign, grid) update the same counter row, so their transactions take that
  row's lock in turn until commit (a grid has 2–3 workers; a visit commits in milliseconds).
* Existing campaigns are counted once here.

Revision ID: 0022
Revises: 0021, 0004
Create Date: 2026-12-03
"""

from alembic import op

revision = "0022"
down_revision = ("0021", "0004")  # also joins the field branch, where the campaign tables live
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE campaign_grid_counts (
    campaign_id  integer NOT NULL,
    grid_id      integer NOT NULL,
    targeted     integer NOT NULL DEFAULT 0 CHECK (targeted >= 0),
    screened     integer NOT NULL DEFAULT 0 CHECK (screened >= 0 AND screened <= targeted),
    PRIMARY KEY (campaign_id, grid_id),
    FOREIGN KEY (campaign_id, grid_id) REFERENCES campaign_grids (campaign_id, grid_id) ON DELETE CASCADE
);

CREATE FUNCTION gridgov_campaign_targets_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO campaign_grid_counts AS n (campaign_id, grid_id, targeted)
        SELECT campaign_id, grid_id, count(*) FROM new_rows GROUP BY campaign_id, grid_id
        ON CONFLICT (campaign_id, grid_id) DO UPDATE SET targeted = n.targeted + EXCLUDED.targeted;
    ELSE
        -- a target with a visit cannot be deleted (the visit's foreign key), so only ``targeted`` falls
        UPDATE campaign_grid_counts n SET targeted = n.targeted - d.k
        FROM (SELECT campaign_id, grid_id, count(*) AS k FROM old_rows GROUP BY campaign_id, grid_id) d
        WHERE n.campaign_id = d.campaign_id AND n.grid_id = d.grid_id;
    END IF;
    RETURN NULL;
END $$;

CREATE FUNCTION gridgov_campaign_visits_counted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE campaign_grid_counts n SET screened = n.screened + d.k
    FROM (SELECT t.campaign_id, t.grid_id, count(*) AS k
          FROM new_rows v JOIN campaign_targets t ON t.campaign_id = v.campaign_id AND t.household_id = v.household_id
          GROUP BY t.campaign_id, t.grid_id) d
    WHERE n.campaign_id = d.campaign_id AND n.grid_id = d.grid_id;
    RETURN NULL;
END $$;

CREATE TRIGGER campaign_targets_counted_insert AFTER INSERT ON campaign_targets REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gridgov_campaign_targets_counted();
CREATE TRIGGER campaign_targets_counted_delete AFTER DELETE ON campaign_targets REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gridgov_campaign_targets_counted();
CREATE TRIGGER campaign_visits_counted AFTER INSERT ON campaign_visits REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION gridgov_campaign_visits_counted();

INSERT INTO campaign_grid_counts (campaign_id, grid_id, targeted, screened)
SELECT t.campaign_id, t.grid_id, count(*), count(v.household_id)
FROM campaign_targets t
LEFT JOIN campaign_visits v ON v.campaign_id = t.campaign_id AND v.household_id = t.household_id
GROUP BY t.campaign_id, t.grid_id;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS campaign_grid_counts")
    op.execute("DROP FUNCTION IF EXISTS gridgov_campaign_targets_counted(), gridgov_campaign_visits_counted() CASCADE")
