"""Coordinate systems: WGS 84 / CGCS2000, GCJ-02 (Amap, Tencent, WeChat), BD-09 (Baidu) and EPSG CRSs.

Conventions, everywhere in this module:

* **Axis order is always (lon, lat) = (x, y)**, for arguments and results, whatever the EPSG
  definition says (pyproj is used with ``always_xy=True``). Projected CRSs use (easting, northing).
* **Units**: degrees for WGS 84, CGCS2000, GCJ-02 and BD-09; the CRS's own unit (usually metres)
  for projected EPSG CRSs.
* **WGS 84 = CGCS2000**: EPSG:4326 and EPSG:4490 differ by a few centimetres, which gridgov
  ignores: converting between them returns the coordinates unchanged. :func:`parse_crs` keeps the
  name ("EPSG:4490") so that responses can echo what the client sent.
* **Mainland rule**: GCJ-02 and BD-09 differ from WGS 84 only inside mainland China, as given by
  the polygon of :func:`spatial.geometry.china.mainland_polygon` (Hong Kong, Macau and Taiwan
  excluded, Hainan included). Everywhere else all conversions return their input unchanged.
  Membership is always decided on the **WGS 84** point: for a GCJ-02 or BD-09 input, the point is
  first converted back (as if it were in the mainland) and that WGS 84 point is tested. So
  ``wgs84 -> gcj02 -> wgs84`` is the identity for every mainland point; a point outside, but
  within one shift (~0.6 km for GCJ-02, ~1.2 km for BD-09) of the border, is ambiguous (it could be
  an unshifted Hong Kong point or a shifted Shenzhen one) and is read as the shifted mainland
  point whenever its back-converted position lies in the mainland.
* **Accuracy**: the forward GCJ-02 and BD-09 formulas are the public ones, reproduced to
  floating-point precision (GCJ-02 is itself only a ~1 m approximation of what map providers
  do). The inverses iterate the forward formula until the residual is below 1e-9 degree
  (~0.1 mm), so round trips are under 1 cm (measured: well under 1 mm). EPSG transformations
  are those of PROJ.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyproj
import shapely
from numpy.typing import ArrayLike

from spatial.errors import InvalidInput, UnknownCRS
from spatial.geometry.china import mainland_polygon

__all__ = [
    "BD09",
    "CGCS2000",
    "GCJ02",
    "WGS84",
    "CoordSys",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "in_mainland_china",
    "parse_crs",
    "to_wgs84",
    "transform_geom",
    "transform_xy",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

XYFunction = Callable[[np.ndarray], np.ndarray]
"""Maps an (N, 2) array of (x, y) = (lon, lat) coordinates to another, as ``shapely.transform`` wants."""


@dataclass(frozen=True)
class CoordSys:
    """A coordinate system gridgov accepts.

    ``name`` is canonical: "EPSG:4326", "EPSG:4490", "GCJ-02", "BD-09" or "EPSG:<n>"; ``epsg`` is
    None for GCJ-02 and BD-09, which no registry defines. Build instances with :func:`parse_crs`.
    """

    name: str
    epsg: int | None
    label_zh: str
    label_en: str

    @property
    def is_geographic(self) -> bool:
        """True for (lon, lat) systems in degrees: WGS 84, CGCS2000, GCJ-02, BD-09, other geographic EPSG CRSs."""
        return self.epsg is None or _pyproj_crs(self.epsg).is_geographic

    @property
    def is_shifted(self) -> bool:
        """True for GCJ-02 and BD-09, the obfuscated Chinese web-map systems."""
        return self.epsg is None

    @property
    def is_wgs84(self) -> bool:
        """True for EPSG:4326 and EPSG:4490, whose coordinates gridgov treats as equal."""
        return self.epsg in _WGS84_CODES

    def __str__(self) -> str:
        return self.name


WGS84 = CoordSys("EPSG:4326", 4326, "WGS 84 经纬度", "WGS 84 (longitude, latitude)")
CGCS2000 = CoordSys("EPSG:4490", 4490, "CGCS2000 国家大地坐标系经纬度", "CGCS2000 (longitude, latitude)")
GCJ02 = CoordSys("GCJ-02", None, "GCJ-02 国测局坐标（高德、腾讯、微信）", "GCJ-02 (Amap, Tencent, WeChat)")
BD09 = CoordSys("BD-09", None, "BD-09 百度坐标", "BD-09 (Baidu)")

_WGS84_CODES = frozenset({4326, 4490})

# Keys are lower case without blanks, hyphens or underscores (see _compact).
_ALIASES: dict[str, CoordSys] = {
    **dict.fromkeys(("wgs84", "epsg:4326", "4326", "crs84", "ogc:crs84", "urn:ogc:def:crs:ogc:1.3:crs84",
                     "urn:ogc:def:crs:ogc::crs84", "http://www.opengis.net/def/crs/ogc/1.3/crs84",
                     "https://www.opengis.net/def/crs/ogc/1.3/crs84"), WGS84),
    **dict.fromkeys(("cgcs2000", "epsg:4490", "4490"), CGCS2000),
    **dict.fromkeys(("gcj02", "gcj", "amap", "gaode", "autonavi", "tencent", "wechat"), GCJ02),
    **dict.fromkeys(("bd09", "bd09ll", "baidu"), BD09),
}

MAX_NAME_LENGTH = 100
"""Longest CRS name accepted (characters): the longest accepted form, an OGC URL with a version
(``https://www.opengis.net/def/crs/EPSG/9.9.1/4326``), is under 60. Longer names are UnknownCRS without being
parsed; the API declares the same bound (``maxLength``) on every ``crs`` parameter."""
NAME_PATTERN = ("^(|WGS84|wgs84|WGS-84|CRS84|crs84|OGC:CRS84|CGCS2000|cgcs2000"
                "|GCJ-02|GCJ02|gcj02|gcj|amap|gaode|autonavi|tencent|wechat|BD-09|BD09|bd09|bd09ll|baidu"
                "|(EPSG|epsg)::?[0-9]{1,6}|[0-9]{1,6}|urn:ogc:def:crs:(EPSG|epsg):[0-9.]*:[0-9]{1,6}"
                "|urn:ogc:def:crs:OGC:(1\\.3)?:CRS84"
                "|https?://www\\.opengis\\.net/def/crs/(EPSG/[0-9.]+/[0-9]{1,6}|OGC/1\\.3/CRS84))$")
"""The names :func:`parse_crs` reads, in their usual spellings (it reads any case, and blanks, hyphens and
underscores in the aliases), as a regular expression for the API's documents. A name that matches may still
be unknown: an EPSG code that PROJ does not know, or of a CRS neither geographic nor projected."""
MAX_CODE_DIGITS = 9
"""EPSG codes have at most 6 digits (ESRI's up to 6 too); longer digit runs are UnknownCRS, never an int."""

_CODE = rf"(\d{{1,{MAX_CODE_DIGITS}}})"
_EPSG_PATTERNS = (
    re.compile(rf"epsg::?{_CODE}"),
    re.compile(rf"urn:ogc:def:crs:epsg:[\d.]*:{_CODE}"),
    re.compile(rf"https?://www\.opengis\.net/def/crs/epsg/[\d.]+/{_CODE}"),
    re.compile(_CODE),
)

_ACCEPTED = (
    "WGS84 / EPSG:4326 / CRS84 (also as OGC URN or URL)",
    "CGCS2000 / EPSG:4490",
    "GCJ-02 (gcj02, gcj, amap, tencent, wechat)",
    "BD-09 (bd09, baidu)",
    "any EPSG:<code> of a geographic or projected CRS, e.g. EPSG:4547, EPSG:32650, EPSG:3857",
)

_ZH_LABELS = {
    4547: "CGCS2000 3度带高斯-克吕格投影（中央经线114°E）",
    3857: "Web 墨卡托投影",
    32650: "WGS 84 UTM 50N 投影",
}


def parse_crs(value: str | int | CoordSys | None) -> CoordSys:
    """The :class:`CoordSys` named by ``value``, case-insensitively.

    None or "" mean WGS 84. Accepted: "wgs84", "WGS-84", "EPSG:4326", "4326", 4326, "CRS84",
    "OGC:CRS84", OGC URNs and URLs ("urn:ogc:def:crs:EPSG::4326",
    "http://www.opengis.net/def/crs/EPSG/0/4326", ".../OGC/1.3/CRS84"), "cgcs2000" and "EPSG:4490"
    (same coordinates as WGS 84, name kept), "gcj02" / "GCJ-02" / "gcj" / "amap" / "tencent" /
    "wechat", "bd09" / "BD-09" / "baidu", and "EPSG:<n>" for any geographic or projected CRS that
    pyproj can build. A :class:`CoordSys` is returned as is.

    Raises :class:`spatial.errors.UnknownCRS` for anything else, with the accepted names in the message;
    also for names longer than :data:`MAX_NAME_LENGTH` characters or codes of more than
    :data:`MAX_CODE_DIGITS` digits (the message then quotes only the start of the name).
    """
    if isinstance(value, CoordSys):
        return value
    if value is None:
        return WGS84
    if isinstance(value, bool) or not isinstance(value, int | np.integer | str):
        raise _unknown(value)
    if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
        raise _unknown(f"{value[:40]}... ({len(value)} characters; at most {MAX_NAME_LENGTH})")
    if not isinstance(value, str) and not 0 <= value < 10**MAX_CODE_DIGITS:
        raise _unknown(f"EPSG code out of range (at most {MAX_CODE_DIGITS} digits)")  # repr of a huge int would raise
    key = f"epsg:{value}" if not isinstance(value, str) else re.sub(r"\s+", "", value).lower()
    if not key:
        return WGS84
    try:
        return _parse_key(key)
    except UnknownCRS:
        raise _unknown(value) from None


@functools.lru_cache(maxsize=256)
def _parse_key(key: str) -> CoordSys:
    """Parse a lower-case, blank-free CRS name (cached)."""
    alias = _ALIASES.get(re.sub(r"[-_]", "", key)) or _ALIASES.get(key)
    if alias is not None:
        return alias
    for pattern in _EPSG_PATTERNS:
        match = pattern.fullmatch(key)
        if match:
            return _from_epsg(int(match.group(1)), key)
    raise _unknown(key)


def _from_epsg(code: int, original: str) -> CoordSys:
    if code in _WGS84_CODES:
        return WGS84 if code == 4326 else CGCS2000
    try:
        crs = _pyproj_crs(code)
    except pyproj.exceptions.CRSError:
        raise _unknown(original) from None
    if not (crs.is_geographic or crs.is_projected):
        raise _unknown(original)
    return CoordSys(f"EPSG:{code}", code, _ZH_LABELS.get(code, crs.name), crs.name)


def _unknown(value: object) -> UnknownCRS:
    return UnknownCRS(
        f"Unknown coordinate system {value!r}. Accepted: " + "; ".join(_ACCEPTED) + ".",
        value=str(value),
        accepted=list(_ACCEPTED),
    )


@functools.lru_cache(maxsize=64)
def _pyproj_crs(code: int) -> pyproj.CRS:
    return pyproj.CRS.from_epsg(code)


# --- GCJ-02 and BD-09 formulas (public, well known) ------------------------------------------------

_KRASOVSKY_A = 6378245.0  # semi-major axis (m) of the Krasovsky 1940 ellipsoid used by GCJ-02
_KRASOVSKY_EE = 0.00669342162296594323  # its first eccentricity squared
_X_PI = math.pi * 3000.0 / 180.0  # BD-09 constant
_INVERSE_TOLERANCE_DEG = 1e-9
_INVERSE_MAX_ITERATIONS = 20


def _gcj_poly_lat(x, y, xp=np):
    """The GCJ-02 latitude polynomial, of x = lon - 105 and y = lat - 35 (degrees); ``xp`` numpy for arrays,
    math for floats."""
    pi = math.pi
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * xp.sqrt(abs(x))
    ret += (20.0 * xp.sin(6.0 * x * pi) + 20.0 * xp.sin(2.0 * x * pi)) * 2.0 / 3.0
    ret += (20.0 * xp.sin(y * pi) + 40.0 * xp.sin(y / 3.0 * pi)) * 2.0 / 3.0
    ret += (160.0 * xp.sin(y / 12.0 * pi) + 320.0 * xp.sin(y * pi / 30.0)) * 2.0 / 3.0
    return ret


def _gcj_poly_lon(x, y, xp=np):
    """The GCJ-02 longitude polynomial, of x = lon - 105 and y = lat - 35 (degrees); ``xp`` as above."""
    pi = math.pi
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * xp.sqrt(abs(x))
    ret += (20.0 * xp.sin(6.0 * x * pi) + 20.0 * xp.sin(2.0 * x * pi)) * 2.0 / 3.0
    ret += (20.0 * xp.sin(x * pi) + 40.0 * xp.sin(x / 3.0 * pi)) * 2.0 / 3.0
    ret += (150.0 * xp.sin(x / 12.0 * pi) + 300.0 * xp.sin(x / 30.0 * pi)) * 2.0 / 3.0
    return ret


def _gcj_shift(lon, lat, xp=np):
    """(dlon, dlat) degrees that WGS 84 -> GCJ-02 adds, by formula (no mainland test); ``xp`` as above."""
    dlat = _gcj_poly_lat(lon - 105.0, lat - 35.0, xp)
    dlon = _gcj_poly_lon(lon - 105.0, lat - 35.0, xp)
    rad_lat = xp.radians(lat)
    magic = 1.0 - _KRASOVSKY_EE * xp.sin(rad_lat) ** 2
    sqrt_magic = xp.sqrt(magic)
    dlat = (dlat * 180.0) / ((_KRASOVSKY_A * (1.0 - _KRASOVSKY_EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_KRASOVSKY_A / sqrt_magic * xp.cos(rad_lat) * math.pi)
    return dlon, dlat


def _gcj_forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 -> GCJ-02 by formula, for every point (no mainland test). Degrees, (lon, lat)."""
    if lon.size == 1 and math.isfinite(lon.flat[0]) and math.isfinite(lat.flat[0]):
        # one point (a phone's position): the formula on floats is ten times faster than on 1-element arrays
        dlon, dlat = _gcj_shift(float(lon.flat[0]), float(lat.flat[0]), math)
    else:
        dlon, dlat = _gcj_shift(lon, lat)
    return lon + dlon, lat + dlat


def _bd_forward(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 -> BD-09 by formula, for every point (no mainland test). Degrees, (lon, lat)."""
    z = np.hypot(lon, lat) + 0.00002 * np.sin(lat * _X_PI)
    theta = np.arctan2(lat, lon) + 0.000003 * np.cos(lon * _X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _invert(forward, lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``forward(p) = (lon, lat)`` for p by fixed-point iteration (the shifts are small and smooth).

    Stops when every residual is below 1e-9 degree or after 20 iterations (it converges in ~3-5).
    NaN coordinates stay NaN and do not hold up the others.
    """
    x, y = lon.copy(), lat.copy()
    for _ in range(_INVERSE_MAX_ITERATIONS):
        fx, fy = forward(x, y)
        ex, ey = fx - lon, fy - lat
        x -= ex
        y -= ey
        if not np.any((np.abs(ex) > _INVERSE_TOLERANCE_DEG) | (np.abs(ey) > _INVERSE_TOLERANCE_DEG)):
            break
    return x, y


# Levels of the chain WGS 84 --gcj--> GCJ-02 --bd--> BD-09; _STEPS[k] goes from level k to k + 1.
_WGS, _GCJ, _BD = 0, 1, 2
_STEPS = (_gcj_forward, _bd_forward)


def _prepare(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray, bool]:
    """Float64 arrays of equal shape (copies), and whether both inputs were scalars."""
    x, y = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.array(x), np.array(y), x.ndim == 0


def _convert(lon: ArrayLike, lat: ArrayLike, src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    """Convert between chain levels, shifting only points whose WGS 84 position is in the mainland.

    Absurd inputs (1e308, ±inf) give non-finite results without numpy's overflow warnings: callers check
    finiteness and the service extent (``spatial.geometry.validate``)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return _convert_quietly(lon, lat, src, dst)


def _convert_quietly(lon: ArrayLike, lat: ArrayLike, src: int, dst: int) -> tuple[np.ndarray, np.ndarray]:
    x, y, scalar = _prepare(lon, lat)
    chain = [(x, y)]  # chain[k]: the input taken back k levels
    for step in reversed(_STEPS[:src]):
        chain.append(_invert(step, *chain[-1]))
    mainland = in_mainland_china(*chain[-1])
    if dst <= src:
        out = chain[src - dst]
    else:
        out = (x, y)
        for step in _STEPS[src:dst]:
            out = step(*out)
    rx, ry = np.where(mainland, out[0], x), np.where(mainland, out[1], y)
    return (rx[()], ry[()]) if scalar else (rx, ry)


def in_mainland_china(lon: ArrayLike, lat: ArrayLike) -> np.ndarray:
    """Whether WGS 84 points (lon, lat in degrees) lie in mainland China, as a numpy bool array.

    Mainland China includes Hainan and excludes Hong Kong, Macau and Taiwan (see
    :mod:`spatial.geometry.china` for how the polygon is made and how accurate it is). Polygon
    test (``shapely.contains_xy`` on a prepared polygon), vectorised; points exactly on the border
    and NaN coordinates count as outside. Scalars give a 0-d array.
    """
    return np.asarray(shapely.contains_xy(mainland_polygon(), lon, lat), dtype=bool)


def wgs84_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 (= CGCS2000) -> GCJ-02. Arguments and result are (lon, lat) in degrees.

    Shifts points in mainland China (by 20-700 m; ~0.6 km in Shenzhen); returns others unchanged.
    Accepts floats or numpy arrays (broadcast together); scalars in, numpy float64 scalars out.
    """
    return _convert(lon, lat, _WGS, _GCJ)


def gcj02_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 -> WGS 84 (= CGCS2000), iterative inverse (round trip < 1 cm). (lon, lat) in degrees.

    The point is converted back first; if that WGS 84 point lies in mainland China it is the
    result, otherwise the input is returned unchanged (see the module docstring for the border band).
    """
    return _convert(lon, lat, _GCJ, _WGS)


def gcj02_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """GCJ-02 -> BD-09, (lon, lat) in degrees. Unchanged unless the point's WGS 84 position is in the mainland."""
    return _convert(lon, lat, _GCJ, _BD)


def bd09_to_gcj02(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 -> GCJ-02, iterative inverse (round trip < 1 cm), (lon, lat) in degrees; mainland rule as above."""
    return _convert(lon, lat, _BD, _GCJ)


def wgs84_to_bd09(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """WGS 84 (= CGCS2000) -> BD-09 via GCJ-02, (lon, lat) in degrees.

    Shifts mainland points by 0.7-1.5 km (~1.2 km in Shenzhen); returns others unchanged.
    """
    return _convert(lon, lat, _WGS, _BD)


def bd09_to_wgs84(lon: ArrayLike, lat: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """BD-09 -> WGS 84 (= CGCS2000), iterative inverse (round trip < 1 cm), (lon, lat) in degrees.

    Mainland rule as in :func:`gcj02_to_wgs84`: decided on the back-converted WGS 84 point.
    """
    return _convert(lon, lat, _BD, _WGS)


# --- Any CRS to any CRS ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _transformer(src_epsg: int, dst_epsg: int) -> pyproj.Transformer:
    """A cached, thread-safe (pyproj >= 3.1) transformer with (x, y) = (lon, lat) axis order."""
    return pyproj.Transformer.from_crs(src_epsg, dst_epsg, always_xy=True)


def _level(crs: CoordSys) -> int | None:
    """The chain level of a WGS 84-like or shifted system, None for other EPSG CRSs."""
    if crs.is_wgs84:
        return _WGS
    return {GCJ02.name: _GCJ, BD09.name: _BD}.get(crs.name)


def _pyproj_xy(src_epsg: int, dst_epsg: int, names: tuple[str, str]) -> XYFunction:
    def fn(xy: np.ndarray) -> np.ndarray:
        out = np.column_stack(_transformer(src_epsg, dst_epsg).transform(xy[:, 0], xy[:, 1]))
        bad = ~np.isfinite(out).all(axis=1) & np.isfinite(xy).all(axis=1)
        if bad.any():
            raise InvalidInput(
                f"Coordinates cannot be transformed from {names[0]} to {names[1]}: "
                "they are outside the area where that coordinate system is defined.",
                src=names[0],
                dst=names[1],
                coordinates=xy[bad][:5].tolist(),
            )
        return out

    return fn


def _chain_xy(src: int, dst: int) -> XYFunction:
    return lambda xy: np.column_stack(_convert(xy[:, 0], xy[:, 1], src, dst))


def _compose(first: XYFunction, second: XYFunction) -> XYFunction:
    return lambda xy: second(first(xy))


@functools.lru_cache(maxsize=128)
def _xy_function(src: CoordSys, dst: CoordSys) -> XYFunction | None:
    """The (N, 2) -> (N, 2) function from ``src`` to ``dst``, or None when coordinates do not change."""
    src_level, dst_level = _level(src), _level(dst)
    if src_level is not None and dst_level is not None:
        return None if src_level == dst_level else _chain_xy(src_level, dst_level)
    names = (src.name, dst.name)
    if src_level is None and dst_level is None:
        return _pyproj_xy(src.epsg, dst.epsg, names)
    if src_level is None:  # EPSG -> WGS 84 -> (GCJ-02 | BD-09)
        to_wgs = _pyproj_xy(src.epsg, 4326, names)
        return to_wgs if dst_level == _WGS else _compose(to_wgs, _chain_xy(_WGS, dst_level))
    from_wgs = _pyproj_xy(4326, dst.epsg, names)  # (GCJ-02 | BD-09) -> WGS 84 -> EPSG
    return from_wgs if src_level == _WGS else _compose(_chain_xy(src_level, _WGS), from_wgs)


def transform_xy(
    x: ArrayLike, y: ArrayLike, src: str | int | CoordSys | None, dst: str | int | CoordSys | None
) -> tuple[np.ndarray, np.ndarray]:
    """Convert coordinate arrays from ``src`` to ``dst`` (anything :func:`parse_crs` accepts).

    Axis order (x, y) = (lon, lat) or (easting, northing) on both sides. Returns float64 arrays of
    the broadcast shape (numpy float64 scalars for scalar input). Raises
    :class:`spatial.errors.InvalidInput` when PROJ cannot transform a finite coordinate (e.g. an
    impossible latitude such as 100 degrees into Web Mercator).
    """
    px, py, _ = _prepare(x, y)
    fn = _xy_function(parse_crs(src), parse_crs(dst))
    if fn is not None:
        out = fn(np.column_stack([px.ravel(), py.ravel()]))
        px, py = out[:, 0].reshape(px.shape), out[:, 1].reshape(py.shape)
    return px[()], py[()]


def transform_geom(geom, src: str | int | CoordSys | None, dst: str | int | CoordSys | None):
    """A copy of a shapely geometry (or array of geometries) converted from ``src`` to ``dst``.

    Uses ``shapely.transform`` with an (N, 2) function, so the result is 2D (Z is dropped). The
    mainland rule applies per vertex: a shape straddling the mainland border is shifted only on
    one side and may become invalid there; elsewhere the shifts are smooth and keep validity.
    Returns ``geom`` itself when the coordinates would not change (e.g. EPSG:4326 <-> EPSG:4490).
    """
    fn = _xy_function(parse_crs(src), parse_crs(dst))
    return geom if fn is None else shapely.transform(geom, fn)


def to_wgs84(geom, crs: str | int | CoordSys | None):
    """A shapely geometry in ``crs`` converted to WGS 84 (lon, lat) degrees; see :func:`transform_geom`."""
    return transform_geom(geom, crs, WGS84)


def from_wgs84(geom, crs: str | int | CoordSys | None):
    """A WGS 84 (lon, lat) shapely geometry converted to ``crs``; see :func:`transform_geom`."""
    return transform_geom(geom, WGS84, crs)
