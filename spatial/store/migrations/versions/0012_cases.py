"""Cases (事件 · 网格E通): categories with time limits, cases with their clock, every transition, the calendar.

* ``case_categories``: a tree (``parent_code``) of what can be reported — code (``environment.garbage``),
  Chinese and English names, the responsible department, priority (``normal``/``urgent``) and the time limit
  of each step (``limits``: ``{"register": [30, "work_minutes"], "handle": [3, "work_days"], …}``; a step
  missing here is inherited from the parent). ``active = false`` hides a category from new reports.
* ``cases``: one report. ``tracking_code`` (10 characters, for a resident without an account); category;
  ``location`` (EPSG:4326) and optional building; the grid and community *fixed at report time* (a later
  redraw does not move open cases); description; reporter kind, name and phone (personal data: masked on the
  way out, audited when revealed); state (:mod:`spatial.case_flow`), ``assignee`` (a user name or a
  department), the running step (``clock_step``), when it started, its ``deadline`` and whether its limit counts natural
  rather than working time (``clock_natural``); extension request;
  ``duplicate_of`` when merged; satisfaction (1–5) after closure; ``version`` for If-Match.
* ``case_events``: every transition and extension (who, when, action, from/to state, note, deadlines before
  and after). Never updated or deleted by the application.
* ``work_calendar_days``: the admin's calendar entries (a day off, or a 调休 working day), overriding the
  official calendar (:mod:`spatial.worktime`).

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

import json

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

_NORMAL = {"register": [30, "work_minutes"], "dispatch": [30, "work_minutes"], "handle": [3, "work_days"],
           "verify": [2, "work_hours"], "close": [1, "work_hours"]}
_URGENT = {"register": [10, "work_minutes"], "dispatch": [10, "work_minutes"], "handle": [24, "natural_hours"],
           "verify": [1, "work_hours"], "close": [1, "work_hours"]}

# code, parent, 中文, English, department, priority, limits (None: inherited)
CATEGORIES = [
    ("environment", None, "市容环境", "City appearance and environment", "城市管理和综合执法局", "normal",
     {**_NORMAL, "handle": [2, "work_days"]}),
    ("environment.garbage", "environment", "垃圾堆放", "Dumped rubbish", "城市管理和综合执法局", "normal", None),
    ("environment.street_vendor", "environment", "占道经营", "Street vending on the pavement", "城市管理和综合执法局",
     "normal", None),
    ("facilities", None, "公共设施", "Public facilities", "住房和建设局", "normal", _NORMAL),
    ("facilities.streetlight", "facilities", "路灯损坏", "Broken street light", "城市管理和综合执法局", "normal", None),
    ("facilities.manhole", "facilities", "井盖缺失", "Missing manhole cover", "城市管理和综合执法局", "urgent", _URGENT),
    ("public_order", None, "治安秩序", "Public order", "公安派出所", "normal", _NORMAL),
    ("disputes", None, "矛盾纠纷", "Disputes between residents", "司法所", "normal",
     {**_NORMAL, "handle": [5, "work_days"]}),
    ("fire_safety", None, "消防安全", "Fire safety", "消防救援大队", "urgent", {**_URGENT, "handle": [1, "work_days"]}),
    ("market", None, "市场监管", "Market supervision", "市场监督管理局", "normal", _NORMAL),
    ("epidemic", None, "疫情防控", "Epidemic prevention", "卫生健康局", "urgent", _URGENT),
]


def upgrade() -> None:
    op.execute("""
    CREATE TABLE case_categories (
        code text PRIMARY KEY CHECK (code ~ '^[a-z][a-z0-9_]*(\\.[a-z][a-z0-9_]*)*$' AND length(code) <= 64),
        parent_code text REFERENCES case_categories(code),
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 40),
        name_en text NOT NULL CHECK (length(name_en) BETWEEN 1 AND 80),
        department text NOT NULL,
        priority text NOT NULL DEFAULT 'normal' CHECK (priority IN ('normal', 'urgent')),
        limits jsonb,
        active boolean NOT NULL DEFAULT true
    );
    CREATE TABLE cases (
        id bigserial PRIMARY KEY,
        tracking_code text NOT NULL UNIQUE,
        category_code text NOT NULL REFERENCES case_categories(code),
        location geometry(Point, 4326) NOT NULL,
        building_id bigint REFERENCES buildings(id) ON DELETE SET NULL,
        grid_id integer REFERENCES grids(id),
        community_code varchar(12) REFERENCES divisions(code),
        description text NOT NULL CHECK (length(description) BETWEEN 1 AND 2000),
        reporter_kind text NOT NULL CHECK (reporter_kind IN ('resident', 'grid_worker', 'building_head',
                                                             'department', 'patrol')),
        reporter_user text,
        reporter_name text,
        reporter_phone text,
        reporter_address inet,
        state text NOT NULL DEFAULT 'reported',
        priority text NOT NULL DEFAULT 'normal',
        assignee text,
        clock_step text,
        clock_started_at timestamptz,
        clock_natural boolean NOT NULL DEFAULT false,
        deadline timestamptz,
        extension_requested jsonb,
        extensions smallint NOT NULL DEFAULT 0,
        redos smallint NOT NULL DEFAULT 0,
        duplicate_of bigint REFERENCES cases(id),
        satisfaction smallint CHECK (satisfaction BETWEEN 1 AND 5),
        satisfaction_note text,
        reported_at timestamptz NOT NULL DEFAULT now(),
        closed_at timestamptz,
        version integer NOT NULL DEFAULT 1
    );
    CREATE INDEX cases_location ON cases USING gist (location);
    CREATE INDEX cases_open_deadline ON cases (deadline) WHERE state NOT IN ('closed', 'rejected', 'deferred');
    CREATE INDEX cases_grid_state ON cases (grid_id, state);
    CREATE INDEX cases_community_state ON cases (community_code, state);
    CREATE INDEX cases_assignee ON cases (assignee) WHERE state NOT IN ('closed', 'rejected');
    CREATE TABLE case_events (
        id bigserial PRIMARY KEY,
        case_id bigint NOT NULL REFERENCES cases(id),
        at timestamptz NOT NULL DEFAULT now(),
        actor text NOT NULL,
        action text NOT NULL,
        from_state text,
        to_state text NOT NULL,
        note text,
        assignee text,
        deadline_before timestamptz,
        deadline_after timestamptz,
        late_minutes real
    );
    CREATE INDEX case_events_case ON case_events (case_id, at);
    CREATE TABLE work_calendar_days (
        day date PRIMARY KEY,
        workday boolean NOT NULL,
        note text,
        entered_by text NOT NULL,
        entered_at timestamptz NOT NULL DEFAULT now()
    );
    """)
    for code, parent, name, name_en, department, priority, limits in CATEGORIES:
        op.execute(
            "INSERT INTO case_categories (code, parent_code, name, name_en, department, priority, limits) VALUES ("
            + ", ".join(_literal(v) for v in (code, parent, name, name_en, department, priority)) + ", "
            + ("NULL" if limits is None else _literal(json.dumps(limits)) + "::jsonb") + ")")


def _literal(value: str | None) -> str:
    return "NULL" if value is None else "'" + value.replace("'", "''") + "'"


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS case_events, cases, case_categories, work_calendar_days")
