"""One entry, many forms (表格抗疫): saved extraction templates over the population ledger.

* ``form_templates``: one row per template, its definition a JSON document (source, columns, filters, grouping,
  masking; the catalogues of :mod:`spatial.store.forms` say what each may name). The definition is data, checked
  against those catalogues when saved: it never holds SQL. ``builtin`` marks the three shipped here:

  - ``elderly_alone``: 独居老人 per grid, for civil affairs (民政);
  - ``floating_population``: 流动人口 per building, for the police station (派出所);
  - ``screening_progress``: 排查进度 per community, for the health department (卫健).

The definitions are written out here (not imported from the code) so that this revision stays what it was.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-02
"""

import json

from alembic import op
from sqlalchemy import text

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

SHIPPED = {
    "elderly_alone": {
        "title": "独居老人花名册", "department": "民政", "source": "persons", "group_by": "grid",
        "columns": ["grid_name", "building_name", "unit", "room", "name", "gender", "id_number", "phone", "tags"],
        "filters": [{"filter": "tag", "value": "elderly_alone"}], "masking": "masked"},
    "floating_population": {
        "title": "流动人口登记表", "department": "派出所", "source": "persons", "group_by": "building",
        "columns": ["building_code", "building_name", "unit", "floor", "room", "name", "gender", "id_number", "phone",
                    "relation", "moved_in"],
        "filters": [{"filter": "kind", "value": "floating"}], "masking": "masked"},
    "screening_progress": {
        "title": "排查进度统计表", "department": "卫健", "source": "campaign_progress", "group_by": "community",
        "columns": ["community_code", "community_name", "targeted", "screened", "remaining", "coverage",
                    "follow_up"],
        "filters": [], "masking": "masked"},
}


def upgrade() -> None:
    op.execute("""
        CREATE TABLE form_templates (
            name        text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_]{1,39}$'),
            definition  jsonb NOT NULL CHECK (jsonb_typeof(definition) = 'object'),
            builtin     boolean NOT NULL DEFAULT false,
            created_by  text,
            created_at  timestamptz NOT NULL DEFAULT now(),
            updated_by  text,
            updated_at  timestamptz NOT NULL DEFAULT now()
        )""")
    insert = text("INSERT INTO form_templates (name, definition, builtin, created_by) "
                  "VALUES (:name, CAST(:definition AS jsonb), true, 'migration 0017')")
    for name, definition in SHIPPED.items():
        op.get_bind().execute(insert, {"name": name, "definition": json.dumps(definition, ensure_ascii=False)})


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS form_templates")
