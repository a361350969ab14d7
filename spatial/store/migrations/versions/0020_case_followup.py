"""Cases, issue 15 continued: photos, merged duplicates, satisfaction (回访), supervision (督办), departments.

* ``case_photos``: photos of a case, stored in the database (decision 0017): the re-encoded JPEG bytes (EXIF and
  GPS gone, at most 2,048 px on the long side), their size, sha256 and pixel size; the case state when taken
  (``stage``: ``reported`` for the reporter's, ``handling``/``feedback``… for the handler's) and who took it
  (``uploaded_by``: a user name, or ``resident``). ``public_key`` (random) names the handlers' photos that
  Open311 publishes as ``media_url``; a resident's photo has none and is never public.
* ``cases``: who rated the case and how (``satisfaction_at``, ``satisfaction_by``, ``satisfaction_channel``
  ``resident``/``phone``; the score and note columns exist since 0012), and the leader's supervision flag
  (``supervised_at``, ``supervised_by``, ``supervision_note``).
* ``users.role`` admits ``department`` (责任部门): a department's account, named by ``users.department`` (the
  department's name as in ``case_categories.department`` and a dispatch's ``assignee``).
* ``case_events (assignee)`` index: a department's cases are those ever dispatched to it; ``cases_unfinished``:
  the escalation list reads the unfinished cases only (a few in a thousand after five years);
  ``cases_closed_at``: the figures of a period find the cases closed in it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE case_photos (
    id bigserial PRIMARY KEY,
    case_id bigint NOT NULL REFERENCES cases(id),
    stage text NOT NULL,
    uploaded_by text NOT NULL,
    uploaded_at timestamptz NOT NULL DEFAULT now(),
    media_type text NOT NULL DEFAULT 'image/jpeg' CHECK (media_type = 'image/jpeg'),
    width integer NOT NULL CHECK (width BETWEEN 1 AND 2048),
    height integer NOT NULL CHECK (height BETWEEN 1 AND 2048),
    bytes bytea NOT NULL CHECK (length(bytes) BETWEEN 1 AND 2000000),
    sha256 bytea NOT NULL,
    public_key text UNIQUE
);
CREATE INDEX case_photos_case ON case_photos (case_id, id);
ALTER TABLE cases
    ADD COLUMN satisfaction_at timestamptz,
    ADD COLUMN satisfaction_by text,
    ADD COLUMN satisfaction_channel text CHECK (satisfaction_channel IN ('resident', 'phone')),
    ADD COLUMN supervised_at timestamptz,
    ADD COLUMN supervised_by text,
    ADD COLUMN supervision_note text CHECK (length(supervision_note) <= 500);
CREATE INDEX cases_duplicate_of ON cases (duplicate_of) WHERE duplicate_of IS NOT NULL;
CREATE INDEX cases_supervised ON cases (supervised_at) WHERE supervised_at IS NOT NULL;
CREATE INDEX cases_unfinished ON cases (deadline) WHERE state NOT IN ('closed', 'rejected', 'merged');
CREATE INDEX cases_closed_at ON cases (closed_at) WHERE state = 'closed';
CREATE INDEX case_events_assignee ON case_events (assignee, case_id) WHERE action = 'dispatch';
ALTER TABLE users ADD COLUMN department text CHECK (length(department) BETWEEN 1 AND 64);
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'planner', 'inspector', 'grid_worker', 'viewer', 'auditor', 'department'));
ALTER TABLE users ADD CONSTRAINT users_department_role CHECK ((role = 'department') = (department IS NOT NULL));
"""

DOWNGRADE = """
ALTER TABLE users DROP CONSTRAINT users_department_role;
DELETE FROM users WHERE role = 'department';
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'planner', 'inspector', 'grid_worker', 'viewer', 'auditor'));
ALTER TABLE users DROP COLUMN department;
DROP INDEX IF EXISTS case_events_assignee, cases_closed_at, cases_unfinished, cases_supervised, cases_duplicate_of;
ALTER TABLE cases DROP COLUMN satisfaction_at, DROP COLUMN satisfaction_by, DROP COLUMN satisfaction_channel,
    DROP COLUMN supervised_at, DROP COLUMN supervised_by, DROP COLUMN supervision_note;
DROP TABLE IF EXISTS case_photos;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
