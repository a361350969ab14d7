"""The city code on the hot tables, and the roll-up views a province reads (issue 18 §3, decision 0026).

* ``deployment``: one row, the city this deployment serves (``city_code``, the 4-digit prefix of its administrative
  codes: province 2 + city 2). Set at upgrade time from the divisions when they all share one prefix, else
  ``'0000'`` (not yet stated; no city has it); ``gridgov federation city CODE`` states it later
  (:func:`spatial.store.federation.set_city_code`).
* ``city_code char(4) NOT NULL DEFAULT '<code>'`` on the hot tables :data:`HOT_TABLES` (the tables a worker's
  requests write and read most, and the ones a distributed engine would shard). The default is a *constant*:
  PostgreSQL 11+ adds such a column without rewriting the table (the value lives in the catalogue,
  ``attmissingval``); a write that does not name the column gets the deployment's code. Stating the city later
  changes the defaults (catalogue only) and relabels the rows of the old code.
* ``UNIQUE (city_code, id)`` on each of them: the key a distributed engine needs (a unique key must contain the
  shard key). It builds one b-tree per table (about 1 s per million rows); the primary keys and the foreign keys
  stay as they are (the plan in decision 0026 says how they move).
* Roll-up views for the province, counts and public geometry only — never a name, ID or phone number, address,
  reporter, assignee or free text:

  - ``federation_deployment``: the city code;
  - ``federation_grids``: per current grid, households (the buildings' counts, as the screen sums them),
    buildings, current persons (实有人口), and the open campaigns' targeted and screened households;
  - ``federation_cases``: per case, its place, state, category, times and the inputs of the case figures
    (``due_at`` as :mod:`spatial.store.case_figures` defines it, ``late``: some step was late);
  - ``federation_risk_zones``: every period of every risk zone (level, severity, boundary, valid from/to).

  The views belong to the schema owner; the role ``gridgov_federation`` (no login; created by
  :func:`spatial.store.federation.grant_federation_role`, which needs CREATEROLE) is granted SELECT on them and on
  nothing else.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-03
"""

from alembic import op

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None

HOT_TABLES = ("grids", "buildings", "households", "persons", "cases", "campaign_visits")  # frozen here
TERMINAL = ("closed", "merged", "rejected")  # spatial.case_flow.TERMINAL, frozen here
VIEWS = ("federation_deployment", "federation_grids", "federation_cases", "federation_risk_zones")

DEPLOYMENT = """
CREATE TABLE deployment (
    singleton  boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    city_code  char(4) NOT NULL CHECK (city_code ~ '^[0-9]{4}$'),
    stated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO deployment (city_code)
SELECT CASE WHEN count(DISTINCT left(code, 4)) = 1 THEN min(left(code, 4)) ELSE '0000' END FROM divisions;
"""

VIEWS_SQL = """
CREATE VIEW federation_deployment AS SELECT city_code FROM deployment;

CREATE VIEW federation_grids AS
SELECT g.city_code, g.code AS grid_code, g.community_code, g.name, g.kind, g.boundary,
       coalesce((SELECT sum(b.households) FROM buildings b WHERE b.grid_id = g.id), 0)::bigint AS households,
       (SELECT count(*) FROM buildings b WHERE b.grid_id = g.id) AS buildings,
       (SELECT count(*) FROM buildings b JOIN households h ON h.building_id = b.id
                                         JOIN persons p ON p.household_id = h.id
        WHERE b.grid_id = g.id AND p.moved_out IS NULL) AS persons,
       coalesce((SELECT sum(n.targeted) FROM campaign_grid_counts n JOIN campaigns c ON c.id = n.campaign_id
                 WHERE n.grid_id = g.id AND c.status = 'open'), 0)::bigint AS targeted,
       coalesce((SELECT sum(n.screened) FROM campaign_grid_counts n JOIN campaigns c ON c.id = n.campaign_id
                 WHERE n.grid_id = g.id AND c.status = 'open'), 0)::bigint AS screened
FROM grids g WHERE g.retired_at IS NULL;

CREATE VIEW federation_cases AS
SELECT c.city_code, c.id AS case_id, g.code AS grid_code, c.community_code, c.category_code, k.department,
       c.state, c.priority, c.location, c.reported_at, c.closed_at, c.deadline,
       CASE WHEN c.duplicate_of IS NOT NULL THEN NULL
            WHEN c.state = 'closed' THEN c.closed_at
            WHEN c.state NOT IN ('rejected', 'deferred') THEN c.deadline END AS due_at,
       c.state NOT IN ({terminal}) AS open,
       EXISTS (SELECT 1 FROM case_events e WHERE e.case_id = c.id AND e.late_minutes > 0) AS late,
       c.redos, c.extensions, c.satisfaction
FROM cases c JOIN case_categories k ON k.code = c.category_code LEFT JOIN grids g ON g.id = c.grid_id;

CREATE VIEW federation_risk_zones AS
SELECT d.city_code, z.id AS zone_id, v.version, z.target_kind, z.community_code, z.scope_code, v.scheme, v.level,
       v.severity, v.boundary, v.valid_from, v.valid_to
FROM risk_zones z JOIN risk_zone_versions v ON v.zone_id = z.id CROSS JOIN deployment d;

DO $$ BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'gridgov_federation') THEN
        GRANT SELECT ON {views} TO gridgov_federation;
    END IF;
END $$;
""".replace("{terminal}", ", ".join(f"'{s}'" for s in TERMINAL)).replace("{views}", ", ".join(VIEWS))


def upgrade() -> None:
    op.execute(DEPLOYMENT)
    for table in HOT_TABLES:
        # the constant is read from deployment once, here: a constant default adds the column without a rewrite
        op.execute(f"""
DO $$ BEGIN
    EXECUTE format('ALTER TABLE {table} ADD COLUMN city_code char(4) NOT NULL DEFAULT %L',
                   (SELECT city_code FROM deployment));
END $$;
ALTER TABLE {table} ADD CONSTRAINT {table}_city_key UNIQUE (city_code, id);
""")
    op.execute(VIEWS_SQL)


def downgrade() -> None:
    for view in reversed(VIEWS):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    for table in HOT_TABLES:
        op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS city_code")
    op.execute("DROP TABLE IF EXISTS deployment")
