"""The value types of requests, shared by every router: what the OpenAPI document says a value may be.

Each type states the bound, pattern, length or vocabulary that the code enforces, so that generated clients are
right (issue 13, item 6; ``tests/test_api_contract.py`` checks it). The domain (:mod:`spatial`) still checks every
value itself, for the command line and other callers. Two kinds of types:

* enforced here too (pydantic refuses with a 422 before the domain is reached): ids, codes, enumerations from
  :mod:`spatial.vocab`, numeric ranges, positions;
* stated only (``WithJsonSchema``): the GeoJSON geometries and the CRS names, whose checks live in
  :mod:`spatial.geometry` with messages a planner can act on ("ring 0 is not closed", "Unknown coordinate
  system ..."), which a pydantic error would replace.

Units: metres (``_m``), seconds (``_s``), metres per second (``_mps``). Positions are ``[x, y]`` in the request's
``crs`` (longitude, latitude for geographic systems).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal

from annotated_types import Ge, Le
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from spatial.geometry.crs import MAX_NAME_LENGTH, NAME_PATTERN

# -- ids: PostgreSQL never sees a number it cannot hold -----------------------------------------------------------

PG_INTEGER_MAX = 2_147_483_647
PG_BIGINT_MAX = 9_223_372_036_854_775_807
JSON_INTEGER_MAX = 2**53 - 1
"""The largest integer every JSON client holds exactly (a double): ids above it cannot be sent faithfully."""

Id = Annotated[int, Ge(1), Le(PG_INTEGER_MAX)]
"""The id of a row with a ``serial`` key (grids, campaigns, enclosures, openings, checkpoints): a larger number
would overflow PostgreSQL's ``integer`` (that was a 500)."""
BigId = Annotated[int, Ge(1), Le(JSON_INTEGER_MAX)]
"""The id of a row with a ``bigserial`` key (buildings, households): at most 2^53 - 1, the largest integer a JSON
client holds exactly (a bigserial never gets there)."""

# -- codes of the hierarchy (spatial.geometry.codes) --------------------------------------------------------------

DIVISION_CODE = r"^[0-9]{12}$"
GRID_CODE = r"^[0-9]{12}(0[1-9]|[1-9][0-9])$"
BUILDING_CODE = r"^[0-9]{19}$"
DivisionCode = Annotated[str, StringConstraints(pattern=DIVISION_CODE),
                         Field(description="a division code: 12 digits", examples=["440304096001"])]
GridCode = Annotated[str, StringConstraints(pattern=GRID_CODE),
                     Field(description="a grid code: the community's 12 digits and a 2-digit number 01–99",
                           examples=["44030409600101"])]
BuildingCode = Annotated[str, StringConstraints(pattern=BUILDING_CODE),
                         Field(description="a building code: the grid's 14 digits and a 5-digit number")]


# -- text -----------------------------------------------------------------------------------------------------------


def Text(max_length: int, *, min_length: int = 0, blank: bool = True) -> Any:  # noqa: N802 - a type
    """A string of at most ``max_length`` characters (at least ``min_length``); ``blank=False``: not only
    white space (the domain strips names)."""
    return Annotated[str, StringConstraints(min_length=max(min_length, 0 if blank else 1), max_length=max_length,
                                            pattern=None if blank else r"\S")]


Name = Text(100, blank=False)
"""A name of 1–100 characters, not only white space (grids, enclosures, checkpoints)."""


# -- vocabularies (spatial.vocab) -------------------------------------------------------------------------------


def OneOf(values: Iterable[str]) -> Any:  # noqa: N802 - a type
    """One of ``values`` (the keys of a :mod:`spatial.vocab` vocabulary or a tuple of the domain)."""
    return Literal[tuple(values)]  # type: ignore[valid-type]


# -- numbers with units ------------------------------------------------------------------------------------------


def Metres(low: float, high: float, *, low_open: bool = False, description: str | None = None) -> Any:  # noqa: N802
    """Metres in [low, high] (or (low, high] with ``low_open``)."""
    bound = {"gt": low} if low_open else {"ge": low}
    return Annotated[float, Field(le=high, description=description, **bound)]


SOLVER_MAX_S = 30.0
SolverSeconds = Annotated[float | None, Field(gt=0, le=SOLVER_MAX_S, description=(
    f"solver time for more than 13 stops, at most {SOLVER_MAX_S:g} s (default 0.2–2 s): guided local search "
    "uses all of it"))]
"""Time a request may give the route solver: bounded, since the search runs until its time is up."""


# -- positions and geometries --------------------------------------------------------------------------------------

Position = Annotated[list[float], Field(min_length=2, max_length=2, description="[x, y] in crs")]
"""A point as ``[x, y]``: exactly two numbers, in the request's crs."""

_POSITION = {"type": "array", "items": {"type": "number"}, "minItems": 2,
             "description": "[x, y] in crs (a third number, a height, is ignored)"}
_RING = {"type": "array", "items": _POSITION, "minItems": 4, "description": "closed: the last position is the first"}
_POLYGON = {"type": "object", "required": ["type", "coordinates"], "title": "GeoJSON Polygon",
            "properties": {"type": {"const": "Polygon"},
                           "coordinates": {"type": "array", "items": _RING, "minItems": 1}}}
_MULTIPOLYGON = {"type": "object", "required": ["type", "coordinates"], "title": "GeoJSON MultiPolygon",
                 "properties": {"type": {"const": "MultiPolygon"},
                                "coordinates": {"type": "array", "minItems": 1,
                                                "items": {"type": "array", "items": _RING, "minItems": 1}}}}
_LINESTRING = {"type": "object", "required": ["type", "coordinates"], "title": "GeoJSON LineString",
               "properties": {"type": {"const": "LineString"},
                              "coordinates": {"type": "array", "items": _POSITION, "minItems": 2}}}

PolygonGeoJSON = Annotated[dict[str, Any], WithJsonSchema({
    "oneOf": [_POLYGON, _MULTIPOLYGON],
    "description": "a GeoJSON Polygon or MultiPolygon in crs: closed rings, valid (no self-intersection), "
                   "inside the service area"})]
"""A (Multi)Polygon as sent; checked by :func:`spatial.geometry.validate.polygon_from_geojson`."""
PolygonOnlyGeoJSON = Annotated[dict[str, Any], WithJsonSchema({
    **_POLYGON, "description": "a GeoJSON Polygon in crs (one part): closed rings, valid, inside the service area"})]
"""An enclosure's boundary: one polygon (a MultiPolygon of one part is accepted too)."""
LineGeoJSON = Annotated[dict[str, Any], WithJsonSchema({
    **_LINESTRING, "description": "a GeoJSON LineString in crs, inside the service area"})]
"""A line as sent; checked by :func:`spatial.geometry.validate.line_from_geojson`."""

CrsName = Annotated[str, StringConstraints(max_length=MAX_NAME_LENGTH), WithJsonSchema({
    "type": "string", "maxLength": MAX_NAME_LENGTH, "pattern": NAME_PATTERN,
    "description": "EPSG:4326 (default), EPSG:4490, GCJ-02, BD-09, EPSG:<code> (also as OGC URN or URL); "
                   "names are read case-insensitively"})]
"""A CRS name as sent, in a query or a body (parsed by :func:`spatial.geometry.crs.parse_crs`, which refuses an
unknown one with 400 UnknownCRS): the document states its length bound and the syntax of the accepted names."""


# -- times -------------------------------------------------------------------------------------------------------


def _not_a_number(value: Any) -> Any:
    """Refuse numbers (pydantic would read ``0.5`` as seconds since 1970) and dates without a time."""
    if isinstance(value, int | float) or (isinstance(value, str) and "T" not in value.upper() and " " not in value):
        raise ValueError("expected an ISO 8601 date and time, e.g. 2026-11-23T10:00:00+08:00")
    return value


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("the time needs a time zone, e.g. 2026-11-23T10:00:00+08:00 or ...Z")
    return value


Instant = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_aware),
                    Field(description="ISO 8601 date and time with a time zone, e.g. 2026-11-23T10:00:00+08:00")]
"""A point in time: an RFC 3339 ``date-time`` (with an offset), never a bare number or a date alone."""
