"""The basemap catalogue: basemaps of the settings (read-only) and those administrators added (table ``basemaps``).

``configured`` is always the tuple :func:`spatial.basemaps.from_settings` made of the settings; settings basemaps
come first, then stored ones by name. A stored basemap may not take a settings basemap's name (409). Every change is
audited (``basemap_add``, ``basemap_change``, ``basemap_delete``). No secret is read or written here.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import text
from sqlalchemy.orm import Session

from spatial.access import Principal
from spatial.basemaps import Basemap
from spatial.errors import Conflict, NotFound
from spatial.store import audit

_COLUMNS = "name, name_zh, name_en, url_template, datum, attribution, max_zoom, subdomains, key"


def _from_row(row) -> Basemap:
    values = dict(row._mapping)
    return Basemap(**{**values, "subdomains": tuple(values["subdomains"] or ())}, source="database")


def list_basemaps(session: Session, configured: Sequence[Basemap]) -> list[Basemap]:
    """Every basemap: the settings' first (in their order), then the stored ones by name."""
    rows = session.execute(text(f"SELECT {_COLUMNS} FROM basemaps ORDER BY name")).all()
    return [*configured, *(_from_row(r) for r in rows)]


def get_basemap(session: Session, name: str, configured: Sequence[Basemap]) -> Basemap:
    """The basemap called ``name``; :class:`NotFound` if there is none."""
    for basemap in configured:
        if basemap.name == name:
            return basemap
    row = session.execute(text(f"SELECT {_COLUMNS} FROM basemaps WHERE name = :name"), {"name": name}).first()
    if row is None:
        raise NotFound(f"no basemap called {name!r} (GET /api/basemaps lists them)")
    return _from_row(row)


def _params(basemap: Basemap) -> dict:
    return {**basemap.as_dict(), "subdomains": list(basemap.subdomains)}


def _not_a_setting(name: str, configured: Sequence[Basemap]) -> None:
    if any(b.name == name for b in configured):
        raise Conflict(f"basemap {name!r} is defined in the settings (GRIDGOV_BASEMAPS or gridgov.toml): change "
                       "it there, or choose another name")


def add_basemap(session: Session, who: Principal, basemap: Basemap, configured: Sequence[Basemap]) -> Basemap:
    """Store a new basemap; :class:`Conflict` if the name is taken (by the settings or a stored one)."""
    _not_a_setting(basemap.name, configured)
    added = session.execute(text(
        f"INSERT INTO basemaps ({_COLUMNS}, created_by) VALUES (:name, :name_zh, :name_en, :url_template, :datum, "
        ":attribution, :max_zoom, :subdomains, :key, :who) ON CONFLICT (name) DO NOTHING RETURNING name"),
        {**_params(basemap), "who": who.username}).first()
    if added is None:
        raise Conflict(f"a basemap called {basemap.name!r} exists already: change it with PUT, or choose another "
                       "name")
    audit.record(session, who, "basemap_add", object_type="basemap", object_id=basemap.name,
                 result=f"{basemap.datum} {basemap.url_template.split('/')[2]}")
    return basemap


def replace_basemap(session: Session, who: Principal, basemap: Basemap, configured: Sequence[Basemap]) -> Basemap:
    """Replace the stored basemap of that name; :class:`NotFound` if none, :class:`Conflict` for a settings one."""
    _not_a_setting(basemap.name, configured)
    changed = session.execute(text(
        "UPDATE basemaps SET name_zh = :name_zh, name_en = :name_en, url_template = :url_template, datum = :datum, "
        "attribution = :attribution, max_zoom = :max_zoom, subdomains = :subdomains, key = :key, "
        "updated_at = now() WHERE name = :name RETURNING name"), _params(basemap)).first()
    if changed is None:
        raise NotFound(f"no stored basemap called {basemap.name!r}: add it with POST /api/basemaps")
    audit.record(session, who, "basemap_change", object_type="basemap", object_id=basemap.name,
                 result=f"{basemap.datum} {basemap.url_template.split('/')[2]}")
    return basemap


def delete_basemap(session: Session, who: Principal, name: str, configured: Sequence[Basemap]) -> None:
    """Remove a stored basemap; :class:`NotFound` if none, :class:`Conflict` for a settings one."""
    _not_a_setting(name, configured)
    if session.execute(text("DELETE FROM basemaps WHERE name = :name RETURNING name"), {"name": name}).first() is None:
        raise NotFound(f"no stored basemap called {name!r}")
    audit.record(session, who, "basemap_delete", object_type="basemap", object_id=name)
