"""Personal access tokens: read-only credentials for GIS clients that speak only HTTP Basic (QGIS 3.22).

* ``access_tokens``: one row per token a user made (on /tokens, ``POST /api/tokens`` or ``gridgov token
  create``): its owner, a name, its scopes (``{read}`` only: the read endpoints of ``/ogc``, ``/tiles`` and
  the exports), when it was made, expires (at most 366 days later), was last used and was revoked. Only the
  SHA-256 of the secret is kept (``secret_hash``, unique), and the secret's first characters (``hint``) so its
  owner can tell tokens apart; the secret itself is shown once, at creation.
* A token is never deleted (revoking sets ``revoked_at``); it goes with its owner (``ON DELETE CASCADE``).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

UPGRADE = """
CREATE TABLE access_tokens (
    id            integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id       integer NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name          text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 64),
    secret_hash   bytea NOT NULL UNIQUE CHECK (length(secret_hash) = 32),
    hint          text NOT NULL,
    scopes        text[] NOT NULL DEFAULT '{read}' CHECK (cardinality(scopes) > 0 AND scopes <@ '{read}'),
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz NOT NULL,
    last_used_at  timestamptz,
    revoked_at    timestamptz,
    CHECK (expires_at > created_at AND expires_at <= created_at + interval '366 days')
);
CREATE INDEX access_tokens_user ON access_tokens (user_id);
"""

DOWNGRADE = "DROP TABLE IF EXISTS access_tokens;"


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
