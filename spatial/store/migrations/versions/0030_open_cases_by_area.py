"""Cases by area and by person (issue 15 speed; decision 0028): the indexes a division's and a worker's lists need.

* ``cases_open_area``: the unfinished cases (the rows of ``cases_open_cover``: not closed, rejected or merged) led
  by ``(community_code, grid_id)``, with the columns the counts test. ``cases_open_cover`` (migration 0023) is led
  by the deadline: a division's lists read every unfinished case of the city and keep theirs by a per-row filter
  on the community code. With the caller's scope stated as a code range (``spatial.store.scope.scope_sql``), the
  escalation list's per-unit counts read the subdistrict's entries only, in the units' order (1 M cases, 10,600
  late in one subdistrict: the units' counts 12 → 6 ms; the list's p95 at concurrency 8 226–289 → 71–82 ms).
* ``cases_assignee_all`` and ``cases_reporter_user``: every case with an assignee (handled cases keep theirs),
  every case a staff account reported. A caller sees the cases of their area *or* assigned to them *or*
  reported by them; without an index on each branch of that ``OR`` the planner cannot combine indexes and scans
  the table: the field page's first list (a worker's grids and own cases, every state) took 300 ms at 1 M cases
  (a parallel scan of the table, twice: page and count), 13 ms with them. ``cases_assignee`` (the unfinished ones
  only) stays for the open lists.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03
"""

from alembic import op

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE INDEX cases_open_area ON cases (community_code, grid_id)
            INCLUDE (deadline, state, supervised_at)
            WHERE state NOT IN ('closed', 'rejected', 'merged')""")
    op.execute("CREATE INDEX cases_assignee_all ON cases (assignee) WHERE assignee IS NOT NULL")
    op.execute("CREATE INDEX cases_reporter_user ON cases (reporter_user) WHERE reporter_user IS NOT NULL")


def downgrade() -> None:
    for index in ("cases_reporter_user", "cases_assignee_all", "cases_open_area"):
        op.execute(f"DROP INDEX {index}")
