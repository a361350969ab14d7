"""A covering index of the unfinished cases (issue 15 speed: the overdue and escalation lists of a subdistrict).

The lists and their counts filter the unfinished cases (not closed, rejected or merged: about 0.5% of five years of
cases) by deadline, state, area (community, grid), holder (assignee, reporter) and the leader's flag, and order them
by deadline. ``cases_open_cover`` holds every one of those columns, so the page and the count are read from the
index alone (an index-only scan where the visibility map allows) instead of visiting a heap page per case. It
replaces ``cases_unfinished`` (the same rows, deadline only). Queries must state the index's predicate with
constants (``state NOT IN ('closed', 'rejected', 'merged', …)``) for the planner to use it.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03
"""

from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
        CREATE INDEX cases_open_cover ON cases (deadline, id)
            INCLUDE (state, community_code, grid_id, assignee, reporter_user, supervised_at)
            WHERE state NOT IN ('closed', 'rejected', 'merged')""")
    op.execute("DROP INDEX cases_unfinished")


def downgrade() -> None:
    op.execute("CREATE INDEX cases_unfinished ON cases (deadline) WHERE state NOT IN ('closed', 'rejected', 'merged')")
    op.execute("DROP INDEX cases_open_cover")
