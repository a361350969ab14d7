"""Basemaps (底图): tile services shown under gridgov's own layers, to spot a misplaced or GCJ-02-shifted file.

A basemap is an XYZ tile service: Web Mercator (EPSG:3857) tiles of 256 px, ``{z}/{x}/{y}`` with ``y`` counted
from the top (``{-y}`` for TMS services that count from the bottom). Its **datum** is what its pixels are drawn
in: ``wgs84`` (WGS 84 / CGCS2000: 天地图 Tianditu, OpenStreetMap, most GIS servers) or ``gcj02`` (GCJ-02: 高德
Amap, 腾讯 Tencent, most Chinese commercial maps). Under a ``gcj02`` basemap the pages draw gridgov's WGS 84 layers
shifted into GCJ-02 (see docs/decisions/0013-basemaps.md).

The URL template may hold only these placeholders:

* ``{z}``, ``{x}``, ``{y}`` (or ``{-y}``): the tile, all three required;
* ``{s}``: one of ``subdomains`` (required then, and only then), chosen by ``(x + y) mod n`` so that a tile has
  one URL and caches well;
* ``{key}``: the secret named by ``key``, taken from the ``basemap_keys`` setting when the server fetches the tile;
  it is never stored with the basemap, never sent to a browser and never written in a message.

Only ``http`` and ``https`` URLs with a host are accepted, without user name or password (secrets go through
``{key}``) and without a fragment. Private and loopback hosts are allowed on purpose: offices often run their own
tile server (a Tianditu mirror on the government network) and only administrators configure basemaps.

Everything here is plain Python (no database, no web framework); errors are :class:`~spatial.errors.InvalidInput`
(422) with a message that says what to change, or :class:`~spatial.errors.NotFound` for a tile that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from spatial.errors import InvalidInput, NotFound, SetupError

DATUMS = {"wgs84": ("WGS 84 / CGCS2000（天地图等）", "WGS 84 / CGCS2000 (Tianditu, OpenStreetMap)"),
          "gcj02": ("GCJ-02 国测局坐标（高德、腾讯等）", "GCJ-02 (Amap, Tencent)")}
"""datum code -> (Chinese, English) label."""

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,39}$"
SUBDOMAIN_PATTERN = r"^[A-Za-z0-9-]{1,20}$"
MAX_TEMPLATE_LENGTH = 1000
MAX_LABEL_LENGTH = 100
MAX_ATTRIBUTION_LENGTH = 300
MAX_SUBDOMAINS = 16
MAX_ZOOM_LIMIT = 22
PLACEHOLDERS = ("z", "x", "y", "-y", "s", "key")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True)
class Basemap:
    """One basemap. ``source`` is ``settings`` (read-only, from ``GRIDGOV_BASEMAPS``) or ``database`` (added by an
    admin through the API). ``key`` is the *name* of a secret of the ``basemap_keys`` setting, not the secret."""

    name: str
    name_zh: str
    name_en: str
    url_template: str
    datum: str
    attribution: str
    max_zoom: int = 18
    subdomains: tuple[str, ...] = ()
    key: str | None = None
    source: str = field(default="database", compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "subdomains": list(self.subdomains)}


def _text(value: Any, what: str, limit: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise InvalidInput(f"{what} is required (a text of 1 to {limit} characters)", field=what)
    if len(value) > limit or "\x00" in value:
        raise InvalidInput(f"{what} must be at most {limit} characters, without NUL", field=what)
    return value.strip()


def check_template(template: str, subdomains: Iterable[str] = (), key: str | None = None) -> None:
    """Raise :class:`InvalidInput` unless ``template`` is a usable tile URL template (module docstring rules),
    consistent with ``subdomains`` (needed by ``{s}``) and ``key`` (needed by ``{key}``)."""
    subdomains = tuple(subdomains)
    if not isinstance(template, str) or not template or len(template) > MAX_TEMPLATE_LENGTH:
        raise InvalidInput(f"url_template must be a URL of at most {MAX_TEMPLATE_LENGTH} characters",
                           field="url_template")
    if re.search(r"\s", template) or "\x00" in template:
        raise InvalidInput("url_template must not contain spaces or control characters", field="url_template")
    used = _PLACEHOLDER.findall(template)
    unknown = sorted(set(used) - set(PLACEHOLDERS))
    if unknown or _PLACEHOLDER.sub("", template).count("{") or _PLACEHOLDER.sub("", template).count("}"):
        raise InvalidInput("url_template may only use the placeholders " + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
                           + (f"; unknown: {', '.join('{' + u + '}' for u in unknown)}" if unknown else
                              "; a brace is unmatched"), field="url_template")
    missing = [p for p in ("z", "x") if p not in used] + ([] if {"y", "-y"} & set(used) else ["y"])
    if missing:
        raise InvalidInput("url_template must contain {z}, {x} and {y} (or {-y} for TMS); missing: "
                           + ", ".join("{" + m + "}" for m in missing), field="url_template")
    if "s" in used and not subdomains:
        raise InvalidInput("url_template uses {s}: give the subdomains to fill it with (e.g. [\"1\", \"2\", \"3\", "
                           "\"4\"])", field="subdomains")
    if subdomains and "s" not in used:
        raise InvalidInput("subdomains are given but url_template has no {s} to put them in", field="subdomains")
    if ("key" in used) != bool(key):
        raise InvalidInput("url_template uses {key}: name the secret in key (an entry of the basemap_keys setting)"
                           if "key" in used else "key is given but url_template has no {key}", field="key")
    sample = _fill(template, {"z": "1", "x": "0", "y": "0", "-y": "1", "s": subdomains[0] if subdomains else "",
                              "key": "k"})
    parts = urlsplit(sample)
    if parts.scheme.lower() not in ("http", "https"):
        raise InvalidInput(f"url_template must start with https:// or http:// (not {parts.scheme + ':' if parts.scheme else 'a relative URL'})",
                           field="url_template")
    if not parts.hostname or "{" in template.split("://", 1)[0]:
        raise InvalidInput("url_template must name a host, e.g. https://t{s}.tianditu.gov.cn/...",
                           field="url_template")
    if parts.username is not None or parts.password is not None:
        raise InvalidInput("url_template must not hold a user name or password: put a secret in basemap_keys and "
                           "write {key} where it goes", field="url_template")
    if parts.fragment or "#" in template:
        raise InvalidInput("url_template must not have a #fragment", field="url_template")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise InvalidInput("url_template has an invalid port", field="url_template") from None


def make_basemap(values: Mapping[str, Any], *, name: str | None = None, source: str = "database",
                 known_keys: Iterable[str] | None = None) -> Basemap:
    """A checked :class:`Basemap` from a mapping (an API body, a settings entry). ``name`` overrides
    ``values["name"]`` (a settings table keyed by name). With ``known_keys`` given, ``key`` must be one of them."""
    if not isinstance(values, Mapping):
        raise InvalidInput("a basemap must be an object with name, name_zh, name_en, url_template, datum, "
                           "attribution")
    name = name if name is not None else values.get("name")
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise InvalidInput("name must be 1 to 40 lower-case letters, digits, '-' or '_', starting with a letter or "
                           "digit (it is part of the tile URL), e.g. tianditu-img", field="name")
    datum = values.get("datum")
    if datum not in DATUMS:
        raise InvalidInput("datum must be wgs84 (WGS 84 / CGCS2000, e.g. Tianditu) or gcj02 (GCJ-02, e.g. Amap)",
                           field="datum")
    max_zoom = values.get("max_zoom", 18)
    if isinstance(max_zoom, bool) or not isinstance(max_zoom, int) or not 1 <= max_zoom <= MAX_ZOOM_LIMIT:
        raise InvalidInput(f"max_zoom must be a whole number from 1 to {MAX_ZOOM_LIMIT}", field="max_zoom")
    subdomains = values.get("subdomains") or ()
    if isinstance(subdomains, str):
        subdomains = tuple(subdomains)  # Leaflet's "1234" shorthand
    if (not isinstance(subdomains, list | tuple) or len(subdomains) > MAX_SUBDOMAINS
            or not all(isinstance(s, str) and re.fullmatch(SUBDOMAIN_PATTERN, s) for s in subdomains)):
        raise InvalidInput(f"subdomains must be a list of at most {MAX_SUBDOMAINS} host labels (letters, digits, "
                           "'-')", field="subdomains")
    key = values.get("key") or None
    if key is not None and (not isinstance(key, str) or not re.fullmatch(NAME_PATTERN, key)):
        raise InvalidInput("key must be the name of a basemap_keys entry (lower-case letters, digits, '-', '_')",
                           field="key")
    template = values.get("url_template")
    check_template(template, subdomains, key)
    if key is not None and known_keys is not None and key not in set(known_keys):
        raise InvalidInput(f"no secret named {key!r} is configured: add it to the basemap_keys setting "
                           "(GRIDGOV_BASEMAP_KEYS) and restart, then add the basemap", field="key")
    return Basemap(name=name, name_zh=_text(values.get("name_zh"), "name_zh", MAX_LABEL_LENGTH),
                   name_en=_text(values.get("name_en"), "name_en", MAX_LABEL_LENGTH), url_template=template,
                   datum=datum, attribution=_text(values.get("attribution"), "attribution", MAX_ATTRIBUTION_LENGTH),
                   max_zoom=max_zoom, subdomains=tuple(subdomains), key=key, source=source)


def from_settings(entries: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]],
                  known_keys: Iterable[str]) -> tuple[Basemap, ...]:
    """The basemaps of the ``basemaps`` setting: a list of objects with a ``name`` each, or a table keyed by name.
    A bad entry raises :class:`InvalidInput` naming it, so a misconfiguration stops the start, not a page."""
    keys = tuple(known_keys)
    named = entries.items() if isinstance(entries, Mapping) else ((None, e) for e in entries)
    out: dict[str, Basemap] = {}
    for name, entry in named:
        try:
            basemap = make_basemap(entry, name=name, source="settings", known_keys=keys)
        except InvalidInput as exc:
            label = name or (entry.get("name") if isinstance(entry, Mapping) else None) or "?"
            raise InvalidInput(f"setting basemaps, entry {label!r}: {exc.message}", **exc.detail) from None
        if basemap.name in out:
            raise InvalidInput(f"setting basemaps: the name {basemap.name!r} is used twice")
        out[basemap.name] = basemap
    return tuple(out.values())


def _fill(template: str, values: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def tile_url(basemap: Basemap, z: int, x: int, y: int, secret: str | None = None) -> str:
    """The upstream URL of tile ``z/x/y`` (y from the top). Raises :class:`NotFound` for a tile outside the
    service (zoom above ``max_zoom``, x or y outside 0 .. 2^z - 1) and :class:`InvalidInput` if the template
    needs a key and ``secret`` is missing (:class:`SetupError`: the server's settings lack it). The result holds the secret: never log it nor show it."""
    if not (0 <= z <= basemap.max_zoom and 0 <= x < 2 ** z and 0 <= y < 2 ** z):
        raise NotFound(f"no tile {z}/{x}/{y} in basemap {basemap.name!r} (zoom 0 to {basemap.max_zoom}, x and y "
                       "from 0 to 2^z - 1)")
    if basemap.key and not secret:
        raise SetupError(f"basemap {basemap.name!r} needs the secret {basemap.key!r}, which is not configured "
                           "(basemap_keys setting)")
    subdomain = basemap.subdomains[(x + y) % len(basemap.subdomains)] if basemap.subdomains else ""
    return _fill(basemap.url_template, {"z": str(z), "x": str(x), "y": str(y), "-y": str(2 ** z - 1 - y),
                                        "s": subdomain, "key": quote(secret or "", safe="")})
