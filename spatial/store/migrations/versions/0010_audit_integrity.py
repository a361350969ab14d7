"""Audit integrity: the server stamps every audit row, and rows are chained by hash once committed.

* ``audit_log_stamp`` (BEFORE INSERT, each row) overrides what the client sent: ``id`` from the table's
  sequence (no client-chosen id fills a gap), ``at`` from the database clock (``clock_timestamp()``), ``role``
  from ``users`` for the ``username`` given (NULL when the name is no account: the command line's ``cli``,
  ``demo``; and with no name at all — a failed login keeps its user NULL and the name tried in ``object_id``),
  and ``db_user``, the database login that wrote the row (``session_user``: ``gridgov_app`` for the service, the
  owner for the command line). It queues the row's id in ``audit_unsealed``.
* ``audit_chain`` (position, audit_id, hash): rows are appended by the sealer
  (:mod:`spatial.store.audit_chain`) in the order they are sealed, not in the request path; append-only like
  the log. ``hash = sha256(previous hash ‖ canonical row)``, the canonical row being
  ``jsonb_strip_nulls(to_jsonb(row))::text`` in UTC, so every column, present and future, is covered.
* Every trigger of both tables fires ``ALWAYS``: ``session_replication_role = replica`` does not silence them.
* Rows already in the log are queued, and sealed by the first seal.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

UPGRADE = """
ALTER TABLE audit_log ADD COLUMN db_user text;
ALTER TABLE audit_log ALTER COLUMN id DROP DEFAULT;

CREATE TABLE audit_unsealed (audit_id bigint PRIMARY KEY);
INSERT INTO audit_unsealed (audit_id) SELECT id FROM audit_log;

CREATE TABLE audit_chain (
    position   bigint PRIMARY KEY CHECK (position > 0),
    audit_id   bigint NOT NULL UNIQUE,
    hash       bytea NOT NULL CHECK (length(hash) = 32),
    sealed_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain
    FOR EACH ROW EXECUTE FUNCTION refuse_change('the audit chain is append-only');
CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_change('the audit chain is append-only');

-- Relations are schema-qualified: a temporary table "users" of the inserting session must not answer.
CREATE FUNCTION audit_log_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.id := nextval('public.audit_log_id_seq');
    NEW.at := clock_timestamp();
    NEW.db_user := session_user;
    NEW.role := CASE WHEN NEW.username IS NOT NULL
                     THEN (SELECT u.role FROM public.users u WHERE u.username = NEW.username) END;
    INSERT INTO public.audit_unsealed (audit_id) VALUES (NEW.id);
    RETURN NEW;
END $$;
CREATE TRIGGER audit_log_stamp BEFORE INSERT ON audit_log FOR EACH ROW EXECUTE FUNCTION audit_log_stamp();

ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_stamp;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;
ALTER TABLE audit_chain ENABLE ALWAYS TRIGGER audit_chain_append_only;
ALTER TABLE audit_chain ENABLE ALWAYS TRIGGER audit_chain_no_truncate;
"""

DOWNGRADE = """
DROP TRIGGER IF EXISTS audit_log_stamp ON audit_log;
DROP FUNCTION IF EXISTS audit_log_stamp();
DROP TABLE IF EXISTS audit_chain, audit_unsealed;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;
ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_truncate;
ALTER TABLE audit_log ALTER COLUMN id SET DEFAULT nextval('audit_log_id_seq');
ALTER TABLE audit_log DROP COLUMN IF EXISTS db_user;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
