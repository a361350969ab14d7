"""Basemaps added by administrators (底图): tile services shown under the map pages' layers.

Basemaps from the settings (``GRIDGOV_BASEMAPS``) are not stored. No secret is stored either: ``key`` names an
entry of the ``basemap_keys`` setting (see :mod:`spatial.basemaps`). The checks repeat the rules the API enforces
with clearer messages (:func:`spatial.basemaps.make_basemap`), so that a row written some other way is no worse.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

UPGRADE = r"""
CREATE TABLE basemaps (
    name          text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    name_zh       text NOT NULL CHECK (length(name_zh) BETWEEN 1 AND 100),
    name_en       text NOT NULL CHECK (length(name_en) BETWEEN 1 AND 100),
    url_template  text NOT NULL CHECK (url_template ~* '^https?://' AND length(url_template) <= 1000
                                       AND url_template LIKE '%{z}%' AND url_template LIKE '%{x}%'
                                       AND (url_template LIKE '%{y}%' OR url_template LIKE '%{-y}%')),
    subdomains    text[] NOT NULL DEFAULT '{}' CHECK (cardinality(subdomains) <= 16),
    datum         text NOT NULL CHECK (datum IN ('wgs84', 'gcj02')),
    attribution   text NOT NULL CHECK (length(attribution) BETWEEN 1 AND 300),
    max_zoom      smallint NOT NULL DEFAULT 18 CHECK (max_zoom BETWEEN 1 AND 22),
    key           text CHECK (key ~ '^[a-z0-9][a-z0-9_-]{0,39}$'),
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute("DROP TABLE basemaps")
