"""The unfinished cases by area (issue 15 speed; decision 0028): an index led by the community code.

``cases_open_cover`` (migration 0023) is led by the deadline: a division's lists read every unfinished case of the
city and keep theirs by a per-row filter on the community code. ``cases_open_area`` holds the same rows (not
closed, rejected or merged) led by ``(community_code, grid_id)``, with the columns the counts test: the caller's
scope (``spatial.store.scope.scope_sql`` states a division as a code range) becomes the index's bounds, so the
count of a subdistrict's late cases and the escalation list's per-unit counts read that subdistrict's entries only,
and in the units' order (1 M cases, 10,600 late in one subdistrict: the units' counts 12 → 6 ms, the overdue count
3.6 → 2.5 ms; the gap grows with the city).

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


def downgrade() -> None:
    op.execute("DROP INDEX cases_open_area")
