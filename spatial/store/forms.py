"""One entry, many forms (表格抗疫): saved extraction templates turned into the rows a department asks for.

A template (table ``form_templates``, migration 0017) is data: a JSON object

``{"title": "独居老人花名册", "department": "民政", "source": "persons", "group_by": "grid",
"columns": ["grid_name", "name", "phone", ...], "filters": [{"filter": "tag", "value": "elderly_alone"}],
"masking": "masked"}``

whose names come from fixed catalogues (:data:`COLUMNS`, :data:`FILTERS`, :data:`GROUPINGS`); each catalogue
entry carries its Chinese header and the SQL written here. :func:`check_definition` refuses anything else with one
message naming every problem, so an admin adds forms without code and never sends SQL.

Sources: ``persons`` (current residents of the ledger, one row each), ``households`` (one row per household) and
``campaign_progress`` (households screened / targeted per grid or community of a campaign,
:func:`spatial.store.campaigns.progress`). Every run reads from the one ledger, so a change recorded once shows in
every form.

Rules of a run (:func:`run_form`): rows follow the caller's household scope (:func:`building_scope`; progress the
caller's area, like the campaign pages) and the division asked for (a 12-digit district / subdistrict / community
code, or a 14-digit grid code). Personal columns leave masked (ID first 6 + last 4, mobile 3 + 4, name surname +
``*``) unless the run is *revealed*: an admin, a reason, at most ``per_hour`` revealed runs an hour, the sealed
values opened with the personal-data keys. Every run writes one audit row (households, personal fields, purpose).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial import privacy
from spatial.access import Principal
from spatial.errors import Conflict, Forbidden, InvalidInput, NotFound
from spatial.geometry.codes import scope_prefix
from spatial.personal_keys import PersonalKeys
from spatial.store import audit, campaigns, persons
from spatial.store.scope import building_scope, prefix_bounds, prefix_range
from spatial.vocab import HOUSEHOLD_TAGS, PERSON_RELATIONS, PERSON_TAGS, RESIDENCE_KINDS

SOURCES = ("persons", "households", "campaign_progress")
MASKINGS = ("masked", "unmasked")
NAME = re.compile(r"[a-z][a-z0-9_]{1,39}")
MIN_REASON = 4
REVEALED_RUNS_PER_HOUR = 10
KEYS = ("title", "department", "source", "group_by", "columns", "filters", "masking", "description")


def _labels(column: str, vocabulary: Mapping[str, tuple[str, str]]) -> str:
    """SQL giving the Chinese label of a vocabulary value (the vocabulary is ours: literals, never input)."""
    cases = " ".join(f"WHEN '{k}' THEN '{zh}'" for k, (zh, _) in vocabulary.items())
    return f"CASE {column} {cases} ELSE {column} END"


def _tag_labels(column: str, vocabulary: Mapping[str, tuple[str, str]]) -> str:
    return f"array_to_string(ARRAY(SELECT {_labels('t', vocabulary)} FROM unnest({column}) t), '、')"


@dataclass(frozen=True)
class Column:
    """A column a template may name: its Chinese ``header``, the SQL of its (masked) value over the aliases
    ``p`` persons, ``h`` households, ``b`` buildings, ``g`` grids, ``c`` the community's division (for
    ``campaign_progress``: the attribute of a progress row); ``personal`` columns are audited by name;
    ``mask`` masks a plain value for a masked run; ``sealed`` (SQL, personal-data field) opens it for a revealed
    one; ``head`` a households column opened by :func:`spatial.store.persons.open_heads`."""

    header: str
    sql: str
    personal: bool = False
    mask: Callable[[str | None], str | None] | None = None
    sealed: tuple[str, str] | None = None
    head: bool = False


_PLACE = {
    "grid_code": Column("网格编码", "g.code"),
    "grid_name": Column("网格", "g.name"),
    "community_code": Column("社区编码", "b.community_code"),
    "community_name": Column("社区", "c.name"),
    "building_code": Column("楼栋编码", "b.code"),
    "building_name": Column("楼栋", "coalesce(b.name, b.code)"),
    "unit": Column("单元", "h.unit"),
    "floor": Column("楼层", "h.floor"),
    "room": Column("房号", "h.room"),
}
_PERSON = {
    "name": Column("姓名", "p.name", personal=True, mask=privacy.mask_name),
    "gender": Column("性别", "CASE p.gender WHEN 'male' THEN '男' WHEN 'female' THEN '女' END"),
    "id_number": Column("身份证号", "p.id_number_masked", personal=True,
                        sealed=("p.id_number_sealed", persons.ID_FIELD)),
    "phone": Column("联系电话", "p.phone_masked", personal=True, sealed=("p.phone_sealed", persons.PHONE_FIELD)),
    "relation": Column("与户主关系", _labels("p.relation", PERSON_RELATIONS)),
    "kind": Column("人员类型", _labels("p.kind", RESIDENCE_KINDS)),
    "tags": Column("人员标签", _tag_labels("p.tags", PERSON_TAGS), personal=True),
    "moved_in": Column("迁入日期", "p.moved_in"),
    "isolation_from": Column("隔离开始日期", "p.isolation_from", personal=True),
    "isolation_to": Column("隔离结束日期", "p.isolation_to", personal=True),
    "household_residents": Column("户内人数", "h.residents"),
}
_HOUSEHOLD = {
    "head_name": Column("户主姓名", "h.head_name", personal=True, mask=privacy.mask_name, head=True),
    "head_id_number": Column("户主身份证号", "h.head_id_number", personal=True, mask=privacy.mask_id_number,
                             head=True),
    "head_phone": Column("户主电话", "h.head_phone", personal=True, mask=privacy.mask_phone, head=True),
    "residents": Column("户内人数", "h.residents"),
    "tags": Column("户标签", _tag_labels("h.tags", HOUSEHOLD_TAGS), personal=True),
}
_PROGRESS = {
    "grid_code": Column("网格编码", "grid_code"),
    "grid_name": Column("网格", "grid_name"),
    "community_code": Column("社区编码", "community_code"),
    "community_name": Column("社区", "community_name"),
    "targeted": Column("应排查户数", "targeted"),
    "screened": Column("已排查户数", "screened"),
    "remaining": Column("未排查户数", "remaining"),
    "coverage": Column("排查率(%)", "coverage"),
    "follow_up": Column("需跟进户数", "follow_up"),
    "flagged": Column("位置存疑户数", "flagged"),
}
COLUMNS: Mapping[str, Mapping[str, Column]] = {
    "persons": {**_PLACE, **_PERSON}, "households": {**_PLACE, **_HOUSEHOLD}, "campaign_progress": _PROGRESS}
"""The column catalogue, per source: name → :class:`Column`."""


@dataclass(frozen=True)
class Filter:
    """A filter a template may name: what it means (``doc``), its SQL with the bound parameter ``:v`` (for
    ``campaign_progress``: a predicate on a progress row), and how its ``value`` is read (ValueError: refused)."""

    doc: str
    sql: str | Callable[[dict, Any], bool]
    value: Callable[[Any], Any]


def _one_of(vocabulary: Mapping[str, Any]) -> Callable[[Any], str]:
    def read(value: Any) -> str:
        if not isinstance(value, str | bool) or value not in vocabulary:
            raise ValueError("one of " + ", ".join(json.dumps(k) if isinstance(k, bool) else k for k in vocabulary))
        return value
    return read


def _int_between(low: int, high: int) -> Callable[[Any], int]:
    def read(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"a whole number from {low} to {high}")
        return value
    return read


def _date(value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError("a date YYYY-MM-DD") from None


FILTERS: Mapping[str, Mapping[str, Filter]] = {
    "persons": {
        "tag": Filter("has this mark (独居老人 …)", "CAST(:v AS text) = ANY(p.tags)", _one_of(PERSON_TAGS)),
        "without_tag": Filter("does not have this mark", "NOT (CAST(:v AS text) = ANY(p.tags))", _one_of(PERSON_TAGS)),
        "kind": Filter("population type (户籍 / 流动 / 境外)", "p.kind = :v", _one_of(RESIDENCE_KINDS)),
        "relation": Filter("relation to the head of household", "p.relation = :v", _one_of(PERSON_RELATIONS)),
        "gender": Filter("gender", "p.gender = :v", _one_of({"male": 1, "female": 1})),
        "moved_in_since": Filter("moved in on or after this date", "p.moved_in >= CAST(:v AS date)", _date),
        "isolated_on": Filter("under home isolation on this date",
                              "p.isolation_from <= CAST(:v AS date) AND (p.isolation_to IS NULL "
                              "OR p.isolation_to >= CAST(:v AS date))", _date),
    },
    "households": {
        "tag": Filter("the household has this mark", "CAST(:v AS text) = ANY(h.tags)", _one_of(HOUSEHOLD_TAGS)),
        "residents_at_least": Filter("at least N residents", "h.residents >= :v", _int_between(0, 50)),
        "residents_at_most": Filter("at most N residents", "h.residents <= :v", _int_between(0, 50)),
    },
    "campaign_progress": {
        "coverage_below": Filter("screened share below N percent", lambda row, v: row["coverage"] < v,
                                 _int_between(1, 100)),
        "unscreened": Filter("with households left to screen (value: true)", lambda row, v: row["remaining"] > 0,
                             _one_of({True: 1})),
    },
}
"""The filter catalogue, per source: name → :class:`Filter`."""

GROUPINGS: Mapping[str, Mapping[str, tuple[str, str, str]]] = {
    source: {"grid": ("g.code", "g.name", "网格"), "community": ("b.community_code", "c.name", "社区"),
             "building": ("b.code", "coalesce(b.name, b.code)", "楼栋")}
    for source in ("persons", "households")} | {
    "campaign_progress": {"grid": ("grid_code", "grid_name", "网格"),
                          "community": ("community_code", "community_name", "社区")}}
"""Grouping levels per source: level → (SQL of the group's code, of its name, Chinese label)."""
GROUP_COLUMNS = {"grid": ("grid_code", "grid_name"), "community": ("community_code", "community_name"),
                 "building": ("building_code", "building_name")}
"""The columns a persons / households form starts with when its template does not name them: the group's."""


@dataclass(frozen=True)
class Template:
    """A checked template (:func:`check_definition`); ``filters`` as (name, value read)."""

    name: str
    title: str
    department: str | None
    source: str
    group_by: str
    columns: tuple[str, ...]
    filters: tuple[tuple[str, Any], ...]
    masking: str
    description: str | None = None
    builtin: bool = False

    def definition(self) -> dict[str, Any]:
        """The JSON object as stored (and as the API shows it)."""
        return {"title": self.title, "department": self.department, "source": self.source,
                "group_by": self.group_by, "columns": list(self.columns),
                "filters": [{"filter": f, "value": v.isoformat() if isinstance(v, date) else v}
                            for f, v in self.filters],
                "masking": self.masking, "description": self.description}


def catalogue() -> dict[str, Any]:
    """The catalogues as documentation (the API's ``GET /api/forms/catalogue``): per source its columns (a list
    of name, header, personal: column names are not keys, so no answer has a key such as ``head_phone`` without
    holding one), filters (meaning) and grouping levels; the masking levels."""
    return {"sources": {source: {
        "columns": [{"name": n, "header": c.header, "personal": c.personal} for n, c in COLUMNS[source].items()],
        "filters": {n: f.doc for n, f in FILTERS[source].items()},
        "group_by": {n: label for n, (_, _, label) in GROUPINGS[source].items()}} for source in SOURCES},
        "masking": list(MASKINGS)}


def _few(names, shown: int = 3) -> str:
    """Up to ``shown`` names (each cut to 20 characters), and how many in all if more."""
    names = list(names)
    cut = ", ".join(n[:20] for n in names[:shown])
    return cut if len(names) <= shown else f"{cut} … ({len(names)} in all)"


def check_definition(name: str, definition: Any, *, builtin: bool = False) -> Template:
    """The :class:`Template` ``definition`` describes, or InvalidInput naming every problem (unknown source,
    column, filter or grouping; a filter value of the wrong kind; unknown keys)."""
    problems: list[str] = []
    if not isinstance(name, str) or not NAME.fullmatch(name):
        problems.append("name must be 2–40 characters a–z, 0–9 and _, starting with a letter")
    if not isinstance(definition, dict):
        raise InvalidInput("a template definition is a JSON object: " + ", ".join(KEYS))
    if unknown := sorted(set(definition) - set(KEYS)):
        problems.append(f"unknown keys {_few(map(str, unknown))} (known: {', '.join(KEYS)})")
    title = definition.get("title")
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 100:
        problems.append("title must be a text of 1–100 characters")
    department = definition.get("department")
    if department is not None and (not isinstance(department, str) or len(department) > 100):
        problems.append("department must be a text of at most 100 characters")
    description = definition.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > 1000):
        problems.append("description must be a text of at most 1000 characters")
    source = definition.get("source")
    if source not in SOURCES:
        problems.append(f"source must be one of {', '.join(SOURCES)}")
        raise InvalidInput("; ".join(problems))
    columns = definition.get("columns")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        problems.append("columns must be a non-empty list of column names")
        columns = []
    elif unknown := [c for c in columns if c not in COLUMNS[source]]:
        problems.append(f"unknown columns {_few(unknown)} for source {source}")
    elif len(set(columns)) != len(columns):
        problems.append("a column is named twice")
    filters: list[tuple[str, Any]] = []
    raw_filters = definition.get("filters", [])
    if not isinstance(raw_filters, list):
        problems.append("filters must be a list of {\"filter\": name, \"value\": value}")
        raw_filters = []
    for i, f in enumerate(raw_filters):
        if not isinstance(f, dict) or set(f) - {"filter", "value"} or "filter" not in f:
            problems.append(f"filters[{i}] must be an object {{\"filter\": name, \"value\": value}}")
            continue
        known = FILTERS[source].get(f["filter"]) if isinstance(f["filter"], str) else None
        if known is None:
            problems.append(f"unknown filter {repr(f['filter'])[:50]} for source {source}")
            continue
        try:
            filters.append((f["filter"], known.value(f.get("value"))))
        except ValueError as exc:
            problems.append(f"filter {f['filter']}: value {repr(f.get('value'))[:50]} must be {exc}")
    group_by = definition.get("group_by", "grid")
    if group_by not in GROUPINGS[source]:
        problems.append(f"group_by must be one of {', '.join(GROUPINGS[source])} for source {source}")
    masking = definition.get("masking", "masked")
    if masking not in MASKINGS:
        problems.append(f"masking must be one of {', '.join(MASKINGS)}")
    if problems:
        found = "; ".join(problems)
        if len(found) > 160 and len(problems) > 1:
            found = f"{problems[0]}; and {len(problems) - 1} more problems"
        raise InvalidInput(f"invalid form template: {found} (GET /api/forms/catalogue lists the names)")
    return Template(name=name, title=title.strip(), department=department, source=source, group_by=group_by,
                    columns=tuple(columns), filters=tuple(filters), masking=masking, description=description,
                    builtin=builtin)


# -- the stored templates -----------------------------------------------------------------------------------------


def list_templates(session: Session) -> list[Template]:
    """Every stored template, by name."""
    rows = session.execute(text("SELECT name, definition, builtin FROM form_templates ORDER BY name")).all()
    return [check_definition(r.name, r.definition, builtin=r.builtin) for r in rows]


def get_template(session: Session, name: str) -> Template:
    """The stored template ``name``; NotFound if there is none."""
    row = session.execute(text("SELECT definition, builtin FROM form_templates WHERE name = :n"),
                          {"n": name}).one_or_none()
    if row is None:
        raise NotFound(f"no form template {name!r} (GET /api/forms lists them)")
    return check_definition(name, row.definition, builtin=row.builtin)


def save_template(session: Session, who: Principal, name: str, definition: Any, *, create: bool) -> Template:
    """Add (``create``; Conflict if the name is taken) or replace (NotFound if missing) a template, checked
    against the catalogues; admins only; audited."""
    who.require_role("admin")
    template = check_definition(name, definition)
    stored = json.dumps(template.definition(), ensure_ascii=False)
    if create:
        done = session.execute(text("""
            INSERT INTO form_templates (name, definition, created_by, updated_by)
            VALUES (:n, CAST(:d AS jsonb), :u, :u) ON CONFLICT (name) DO NOTHING"""),
            {"n": name, "d": stored, "u": who.username}).rowcount
        if not done:
            raise Conflict(f"a form template {name!r} exists already (PUT /api/forms/{name} replaces it)")
    else:
        done = session.execute(text("""
            UPDATE form_templates SET definition = CAST(:d AS jsonb), updated_by = :u, updated_at = now()
            WHERE name = :n"""), {"n": name, "d": stored, "u": who.username}).rowcount
        if not done:
            raise NotFound(f"no form template {name!r} (POST /api/forms adds one)")
    audit.record(session, who, "form_template_create" if create else "form_template_update",
                 object_type="form_template", object_id=name, result="ok")
    return template


# -- running a template -------------------------------------------------------------------------------------------


@dataclass
class FormResult:
    """A filled form: ``headers`` (Chinese), ``rows`` (values in header order; the group's code and name
    first unless the template places them),
    ``groups`` (code, name, rows) in order (none for campaign progress, whose rows are groups), whether
    ``revealed``."""

    template: Template
    division: str
    headers: list[str]
    rows: list[list[Any]]
    groups: list[tuple[str | None, str | None, int]] = field(default_factory=list)
    revealed: bool = False

    @property
    def group_label(self) -> str:
        return GROUPINGS[self.template.source][self.template.group_by][2]


def _division_sql(division: str) -> tuple[str, dict[str, Any]]:
    """Predicate on ``b``/``g`` for a 12-digit division code or a 14-digit grid code; InvalidInput otherwise."""
    if re.fullmatch(r"\d{14}", division or ""):
        return "g.code = :division", {"division": division}
    try:
        return prefix_range("b.community_code", "division"), prefix_bounds(scope_prefix(division), "division")
    except ValueError:
        raise InvalidInput(f"division must be a 12-digit division code (district, subdistrict, community) or a "
                           f"14-digit grid code, got {division!r}") from None


def run_form(session: Session, who: Principal, template: Template, division: str, *, reveal: bool = False,
             reason: str | None = None, campaign_id: int | None = None, per_hour: int = REVEALED_RUNS_PER_HOUR,
             keys: Callable[[], PersonalKeys] | None = None) -> FormResult:
    """Fill ``template`` for ``division`` (see the module docstring for scope, masking and audit).

    ``reveal`` (or a template whose masking is 'unmasked') gives full personal values: admins only
    (Forbidden), with a ``reason`` of 4–500 characters (InvalidInput), at most ``per_hour`` such runs per hour
    (TooManyRequests). ``campaign_id`` (progress only): default the newest open campaign the caller sees."""
    _division_sql(division)
    revealed = (reveal or template.masking == "unmasked") and any(
        COLUMNS[template.source][c].personal for c in template.columns)
    reason = (reason or "").strip() or None
    if revealed:
        if who.role != "admin":
            raise Forbidden("full personal values in a form need an admin; run it masked")
        if reason is None or not MIN_REASON <= len(reason) <= 500:
            raise InvalidInput(f"say why you need the full values (a reason of {MIN_REASON}–500 characters)")
        audit.require_below_rate(session, who, "form_reveal", per_hour)
    if template.source == "campaign_progress":
        result, households = _progress_form(session, who, template, division, campaign_id), []
    else:
        result, households = _ledger_form(session, who, template, division, revealed, keys)
    personal = [c for c in template.columns if COLUMNS[template.source][c].personal]
    audit.record(session, who, "form_reveal" if revealed else "form_export", object_type="form",
                 object_id=template.name, households=households, fields=personal,
                 purpose=reason or f"form {template.name} of {division}",
                 result=f"{len(result.rows)} rows of {division}" + ("" if revealed else " (masked)"))
    return result


def _ledger_form(session: Session, who: Principal, template: Template, division: str, revealed: bool,
                 keys: Callable[[], PersonalKeys] | None) -> tuple[FormResult, list[int]]:
    """Rows of a persons / households template: one SQL statement, masked or opened in Python after it."""
    scope, params = building_scope(who.require_household_read())
    where_division, division_params = _division_sql(division)
    catalogue_ = COLUMNS[template.source]
    group_code, group_name, _ = GROUPINGS[template.source][template.group_by]
    shown = (*(c for c in GROUP_COLUMNS[template.group_by] if c not in template.columns), *template.columns)
    selected = [f"{catalogue_[c].sql} AS c{i}" for i, c in enumerate(shown)]
    sealed = [(i, catalogue_[c].sealed) for i, c in enumerate(shown) if catalogue_[c].sealed]
    if revealed:
        selected += [f"{sql} AS s{i}" for i, (sql, _) in sealed]
    filters, filter_params = [], {}
    for k, (name, value) in enumerate(template.filters):
        filters.append("(" + FILTERS[template.source][name].sql.replace(":v", f":f{k}") + ")")
        filter_params[f"f{k}"] = value
    person = template.source == "persons"
    rows = session.execute(text(f"""
        SELECT h.id AS household_id, h.head_name, h.head_id_number, h.head_phone,
               {group_code} AS group_code, {group_name} AS group_name, {', '.join(selected)}
        FROM {'persons p JOIN households h ON h.id = p.household_id' if person else 'households h'}
        JOIN buildings b ON b.id = h.building_id
        LEFT JOIN grids g ON g.id = b.grid_id
        LEFT JOIN divisions c ON c.code = b.community_code
        WHERE {'p.moved_out IS NULL AND ' if person else ''}{scope} AND {where_division}
          {''.join(' AND ' + f for f in filters)}
        ORDER BY {group_code}, b.code, b.id, h.unit, h.floor NULLS LAST, h.room
                 {", p.relation <> 'head', p.id" if person else ', h.id'}"""),
        {**params, **division_params, **filter_params}).mappings().all()
    heads = {}
    if revealed and any(catalogue_[c].head for c in template.columns):
        heads = {r["id"]: r for r in persons.open_heads(
            session, [{"id": r["household_id"], "head_name": r["head_name"], "head_id_number": r["head_id_number"],
                       "head_phone": r["head_phone"]} for r in rows], keys)}
    opened = keys() if revealed and sealed and rows else None
    out, groups = [], []
    for r in rows:
        values = []
        for i, name in enumerate(shown):
            column, value = catalogue_[name], r[f"c{i}"]
            if revealed and column.head:
                value = heads[r["household_id"]][column.sql.removeprefix("h.")]
            elif revealed and column.sealed:
                value = None if r[f"s{i}"] is None else opened.open(column.sealed[1], r[f"s{i}"])
            elif not revealed and column.mask:
                value = column.mask(value)
            values.append(value)
        out.append(values)
        if groups and groups[-1][0] == r["group_code"]:
            groups[-1] = (groups[-1][0], groups[-1][1], groups[-1][2] + 1)
        else:
            groups.append((r["group_code"], r["group_name"], 1))
    headers = [catalogue_[c].header for c in shown]
    households = sorted({int(r["household_id"]) for r in rows})
    return FormResult(template, division, headers, out, groups, revealed), households


def _progress_form(session: Session, who: Principal, template: Template, division: str,
                   campaign_id: int | None) -> FormResult:
    """Rows of a campaign-progress template: :func:`spatial.store.campaigns.progress` at the grouping level, in
    ``division``, filtered. No campaign open (and none named): no rows."""
    if campaign_id is None:
        campaign_id = campaigns.current_campaign_id(session, who)
    found = [] if campaign_id is None else campaigns.progress(session, who, campaign_id)
    prefix = division if re.fullmatch(r"\d{14}", division) else scope_prefix(division)
    rows = []
    for p in found:
        if p.level != template.group_by or not p.code or not p.code.startswith(prefix):
            continue
        row = {"grid_code": p.code if p.level == "grid" else None, "grid_name": p.name if p.level == "grid" else None,
               "community_code": p.code[:12], "community_name": p.name if p.level == "community" else None,
               "targeted": p.targeted, "screened": p.screened, "remaining": p.targeted - p.screened,
               "coverage": round(100 * p.ratio, 2), "follow_up": p.follow_up, "flagged": p.flagged}
        if all(FILTERS["campaign_progress"][f].sql(row, v) for f, v in template.filters):
            rows.append(row)
    if template.group_by == "grid" and rows:
        names = dict(session.execute(text("SELECT code, name FROM divisions WHERE code = ANY(:codes)"),
                                     {"codes": sorted({r["community_code"] for r in rows})}).all())
        for row in rows:
            row["community_name"] = names.get(row["community_code"])
    headers = [_PROGRESS[c].header for c in template.columns]
    return FormResult(template, division, headers, [[row[c] for c in template.columns] for row in rows])
