"""Trust: an auditor role, the audit log closed to TRUNCATE, indexes for rate limits.

* ``users.role`` admits ``auditor`` (审计员): reads the audit log, nothing else.
* ``audit_log`` refuses TRUNCATE too (UPDATE and DELETE were refused by row trigger since 0001). The
  application's own database role (``gridgov_app``, see :mod:`spatial.store.privileges`) additionally has
  no UPDATE, DELETE or TRUNCATE privilege on it, so the refusal does not depend on a trigger alone.
* the login and reveal rate limits count recent rows of one action for one object (the user name tried) or
  one user: a hash index on ``object_id`` (its values can be long lists of household ids, past the size a
  btree row may have), a btree on ``(username, action, at)`` and on ``(client_addr, at)``.

Revision ID: 0007
Revises: 0001
Create Date: 2026-11-22
"""

from alembic import op

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'planner', 'inspector', 'grid_worker', 'viewer', 'auditor'));
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('the audit log is append-only');
CREATE INDEX audit_log_object_idx ON audit_log USING hash (object_id);
CREATE INDEX audit_log_user_idx ON audit_log (username, action, at);
CREATE INDEX audit_log_address_idx ON audit_log (client_addr, at);
"""

DOWNGRADE = """
DROP INDEX IF EXISTS audit_log_address_idx, audit_log_user_idx, audit_log_object_idx;
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
ALTER TABLE users DROP CONSTRAINT users_role_check;
ALTER TABLE users ADD CONSTRAINT users_role_check
    CHECK (role IN ('admin', 'planner', 'inspector', 'grid_worker', 'viewer'));
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
