"""Importing a department's own grids (部门网格) as its named layer of the one network (一张网), with a report.

Files as for grids (:mod:`spatial.io.grid_files`: GeoPackage, GeoJSON, zipped Shapefile; the layer's CRS converted
to EPSG:4326; the same vetting and limits). The department is named by the call: its unified social credit code
(GB 32100, check character verified), name, office line and the layer's name (e.g. 市场监管网格). Fields, matched
case-insensitively:

==============  =============================================================================================
``code``        required (编号, 网格编号): 1–40 letters, digits, ``_ . -``; unique in the file
``name``        (名称, 网格名称); default the code
``contact``     (联系人): the grid's contact person, masked whenever shown
``phone``       (联系电话): a mobile or landline number (the ledger's check), masked whenever shown
==============  =============================================================================================

Checks per feature (:func:`spatial.store.one_network.check_department_grids`): a valid (Multi)Polygon; in some
community; no overlap with another feature of the file (errors); buildings its boundary cuts, land outside every
community, several communities (warnings). With any error nothing is written; ``dry_run`` only checks. A written
import replaces the department's current layer (old rows kept as history). Writes in the caller's transaction.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import shapely
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.errors import InvalidInput
from spatial.io.grid_files import PlanReport, field_text, flag, read_polygons
from spatial.io.residents import phone_value
from spatial.io.safe_files import ReadLimits, shown
from spatial.store import one_network as store

CODE = re.compile(r"[0-9A-Za-z_.-]{1,40}")
ALIASES = {"code": ("code", "编号", "网格编号", "网格编码"), "name": ("name", "名称", "网格名称"),
           "contact": ("contact", "contact_name", "联系人"), "phone": ("phone", "contact_phone", "联系电话")}


def _field(data, f: str, i: int) -> str | None:
    for alias in ALIASES[f]:
        value = field_text(data, alias, i)
        if value is not None:
            return value
    return None


def department_fields(credit_code: str, name: str, layer: str, office_phone: str | None) -> tuple[str, str, str,
                                                                                                 str | None]:
    """The department's code, name, layer name and office line, checked (InvalidInput naming what is wrong)."""
    code = store.credit_code(credit_code)
    name, layer = (name or "").strip(), (layer or "").strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("a department's name has 1 to 100 characters", code="one_network.department_name")
    if not 1 <= len(layer) <= 100:
        raise InvalidInput("a layer's name has 1 to 100 characters", code="one_network.layer_name")
    return code, name, layer, phone_value(office_phone) if office_phone else None


def import_department_grids(session: Session, path: str | Path, who: Principal, *, credit_code: str,
                            department_name: str, layer_name: str, office_phone: str | None = None,
                            file_layer: str | None = None, reason: str | None = None, dry_run: bool = False,
                            metric_srid: int = 4547, limits: ReadLimits = ReadLimits(),
                            name: str | None = None) -> PlanReport:
    """Check (and unless ``dry_run`` or an error, write) a department's grids (module docstring). ``who`` must be
    admin, or a planner whose area holds every community the layer touches (Forbidden otherwise, before writing).
    ``file_layer``: the layer of the file (default its only one). The report's ``kind`` is 'department_grids',
    ``communities`` the scope codes the layer touches."""
    started = time.perf_counter()
    department, department_name, layer_name, office_phone = department_fields(credit_code, department_name,
                                                                              layer_name, office_phone)
    who.require_role(*store.IMPORT_ROLES)
    report, data, labels, ok = read_polygons(path, "department_grids", layer=file_layer, limits=limits, name=name,
                                             dry_run=dry_run)
    rows, seen = [], {}
    for i in ok:
        code, phone = _field(data, "code", i), _field(data, "phone", i)
        if code is None or not CODE.fullmatch(code):
            flag(report, labels[i], "a department grid needs a code (field 'code'): 1–40 letters, digits, _ . -"
                 if code is None else f"code {shown(code)!r} is not 1–40 letters, digits, _ . -")
            continue
        if code in seen:
            flag(report, labels[i], f"code {code} appears twice (also {seen[code]})")
            continue
        seen[code] = labels[i]
        try:
            phone = phone_value(phone)
        except InvalidInput as bad:
            flag(report, labels[i], f"phone: {bad.message}")
            continue
        grid_name = (_field(data, "name", i) or code)[:100]
        contact = _field(data, "contact", i)
        rows.append({"label": labels[i], "code": code, "name": grid_name,
                     "contact_name": contact[:100] if contact else None, "contact_phone": phone,
                     "wkb": shapely.to_wkb(shapely.force_2d(data.geoms[i]))})
    if rows:
        checked = store.check_department_grids(session, [r["wkb"] for r in rows], metric_srid=metric_srid)
        for f in checked.findings:
            report.findings.append((rows[f.index]["label"], f.severity, f.message))
        for row, scope, area in zip(rows, checked.scope_codes, checked.areas_m2, strict=True):
            row["scope_code"], row["area_m2"] = scope, area
        report.communities = sorted({c for touched in checked.communities for c in touched})
        scopes = sorted({s for s in checked.scope_codes if s})
        store.may_import(who, scopes + store.current_scopes(session, department))
    if not report.errors and not dry_run and rows:
        ended, report.inserted = store.write_department_layer(
            session, department=department, department_name=department_name, office_phone=office_phone,
            layer=layer_name, rows=rows, actor=who.username, reason=reason or f"import {report.file}")
        report.notes.append(f"{department_name} ({department}) layer {layer_name}: {ended} grid(s) replaced")
        report.written = True
    report.elapsed_s = time.perf_counter() - started
    return report
