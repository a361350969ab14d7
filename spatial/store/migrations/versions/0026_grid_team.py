"""The grid team (issue 17 §1, decision 0020): team roles, team assignments, tasks.

* ``users.role`` admits the team roles: ``police`` (网格警员), ``medical`` (医护人员), ``specialist`` (部门专员),
  ``building_head`` (楼栋长), ``unit_head`` (单元长), ``volunteer`` (志愿者) (:data:`spatial.vocab.ROLES`).
* ``grid_assignments.contact``: the grid worker's work phone for this grid (11-digit mobile), shown on the team page.
* ``team_assignments``: a team member's duty (the duty of their role) on exactly one target: a grid (police,
  medical staff, specialists, volunteers), a micro-grid (building heads, volunteers) or a building (building and
  unit heads, volunteers; a unit head names the unit), valid over ``[valid_from, valid_to)`` (``valid_to`` NULL:
  open-ended). Ending an assignment sets ``valid_to``; rows are never deleted, so the team's history stays. A
  micro-grid regrouped away (:mod:`spatial.store.microgrids`) takes its assignments with it (ON DELETE CASCADE):
  assign building heads to buildings where the grouping may still change.
* ``tasks``: work handed to a team member (a home-isolation delivery, a care visit, a screening follow-up): its
  ``kind``, the household (and person) or building it is for, its ``grid`` (the building's grid when handed out:
  the scope of the task), the ``assignee``, the ``due`` day, ``done_at`` / ``done_by`` (NULL: undone), a ``note``
  and who handed it out.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03
"""

from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None

ROLES_BEFORE = ("admin", "planner", "inspector", "grid_worker", "viewer", "auditor", "department")
TEAM_ROLES = ("police", "medical", "specialist", "building_head", "unit_head", "volunteer")
TASK_KINDS = ("isolation_delivery", "care_visit", "screening_followup", "other")
PHONE = "'^1[0-9]{10}$'"


def _list(values: tuple[str, ...]) -> str:
    return ", ".join(f"'{v}'" for v in values)


UPGRADE = f"""
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ({_list(ROLES_BEFORE + TEAM_ROLES)}));
ALTER TABLE grid_assignments ADD COLUMN contact varchar(11) CHECK (contact ~ {PHONE});

CREATE TABLE team_assignments (
    id             serial PRIMARY KEY,
    user_id        integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    duty           text NOT NULL CHECK (duty IN ({_list(TEAM_ROLES)})),
    grid_id        integer REFERENCES grids (id),
    micro_grid_id  integer REFERENCES micro_grids (id) ON DELETE CASCADE,
    building_id    bigint REFERENCES buildings (id) ON DELETE CASCADE,
    unit           text CHECK (unit <> '' AND length(unit) <= 20),
    contact        varchar(11) CHECK (contact ~ {PHONE}),
    valid_from     timestamptz NOT NULL DEFAULT now(),
    valid_to       timestamptz CHECK (valid_to >= valid_from),
    created_by     text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    CHECK (num_nonnulls(grid_id, micro_grid_id, building_id) = 1),
    CHECK (duty NOT IN ('police', 'medical', 'specialist') OR grid_id IS NOT NULL),
    CHECK (duty <> 'building_head' OR grid_id IS NULL),
    CHECK (duty <> 'unit_head' OR building_id IS NOT NULL),
    CHECK (unit IS NULL OR building_id IS NOT NULL)
);
CREATE UNIQUE INDEX team_assignments_current ON team_assignments
    (user_id, duty, coalesce(grid_id, 0), coalesce(micro_grid_id, 0), coalesce(building_id, 0), coalesce(unit, ''))
    WHERE valid_to IS NULL;
CREATE INDEX team_assignments_grid ON team_assignments (grid_id) WHERE grid_id IS NOT NULL;
CREATE INDEX team_assignments_micro_grid ON team_assignments (micro_grid_id) WHERE micro_grid_id IS NOT NULL;
CREATE INDEX team_assignments_building ON team_assignments (building_id) WHERE building_id IS NOT NULL;
CREATE INDEX team_assignments_user ON team_assignments (user_id);

CREATE TABLE tasks (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ({_list(TASK_KINDS)})),
    grid_id       integer NOT NULL REFERENCES grids (id),
    building_id   bigint NOT NULL REFERENCES buildings (id),
    household_id  bigint REFERENCES households (id),
    person_id     bigint REFERENCES persons (id),
    assignee_id   integer NOT NULL REFERENCES users (id),
    due           date NOT NULL,
    note          text CHECK (length(note) <= 1000),
    done_at       timestamptz,
    done_by       text,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    CHECK (person_id IS NULL OR household_id IS NOT NULL),
    CHECK ((done_at IS NULL) = (done_by IS NULL))
);
CREATE INDEX tasks_assignee ON tasks (assignee_id, due);
CREATE INDEX tasks_grid ON tasks (grid_id, due);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(f"""
DROP TABLE IF EXISTS tasks, team_assignments;
ALTER TABLE grid_assignments DROP COLUMN IF EXISTS contact;
DELETE FROM users WHERE role IN ({_list(TEAM_ROLES)});
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check CHECK (role IN ({_list(ROLES_BEFORE)}));
""")
