"""The JSON documents of the OGC API – Features endpoints, built from plain values (no database here).

``base`` is the API root URL (``…/ogc``) without a trailing slash. Links carry the media types clients
look for: GDAL follows ``items`` links of type ``application/geo+json`` and ``next`` links of the same type.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import shapely

from api.ogc.crs import CRS84, SUPPORTED, OgcCrs
from spatial.store.layers import Feature, Layer

GEOJSON, JSON, SCHEMA = "application/geo+json", "application/json", "application/schema+json"
OPENAPI = "application/vnd.oai.openapi+json;version=3.0"

CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/oas30",
    "http://www.opengis.net/spec/ogcapi-features-2/1.0/conf/crs",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/queryables",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/filter",
    "http://www.opengis.net/spec/ogcapi-features-3/1.0/conf/features-filter",
    "http://www.opengis.net/spec/cql2/1.0/conf/cql2-text",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-cql2",
    "http://www.opengis.net/spec/cql2/1.0/conf/advanced-comparison-operators",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions",
    "http://www.opengis.net/spec/cql2/1.0/conf/basic-spatial-functions-plus",
    "http://www.opengis.net/spec/cql2/1.0/conf/spatial-functions",
]
_SCHEMA_TYPES = {"integer": {"type": "integer"}, "number": {"type": "number"}, "boolean": {"type": "boolean"},
                 "string": {"type": "string"}, "date": {"type": "string", "format": "date"},
                 "date-time": {"type": "string", "format": "date-time"}}


def link(href: str, rel: str, type_: str, title: str | None = None) -> dict[str, str]:
    out = {"href": href, "rel": rel, "type": type_}
    if title:
        out["title"] = title
    return out


def landing(base: str) -> dict[str, Any]:
    return {
        "title": "gridgov · 网格化服务管理",
        "description": "Map layers of community grid management (grids, buildings, enclosures, checkpoints, "
                       "streets) as OGC API – Features. No personal data is part of any collection.",
        "links": [link(base, "self", JSON, "this document"),
                  link(f"{base}/api", "service-desc", OPENAPI, "the API definition"),
                  link(f"{base}/conformance", "conformance", JSON, "conformance classes"),
                  link(f"{base}/collections", "data", JSON, "the collections")],
    }


def collection(base: str, name: str, spec: Layer, bbox, interval) -> dict[str, Any]:
    url = f"{base}/collections/{name}"
    extent: dict[str, Any] = {"spatial": {"bbox": [list(bbox or (-180.0, -90.0, 180.0, 90.0))], "crs": CRS84}}
    if interval is not None:
        extent["temporal"] = {"interval": [list(interval)],
                              "trs": "http://www.opengis.net/def/uom/ISO-8601/0/Gregorian"}
    return {
        "id": name, "title": f"{spec.label_zh} · {spec.label_en}",
        "description": f"{spec.label_en} ({spec.label_zh}); geometry {spec.geometry_type}; id = {spec.key}"
                       + ("; datetime reads the plan in force at an instant" if spec.history else ""),
        "itemType": "feature", "extent": extent, "crs": list(SUPPORTED), "storageCrs": CRS84,
        "links": [link(url, "self", JSON), link(f"{url}/items", "items", GEOJSON, "the features"),
                  link(f"{url}/queryables", "http://www.opengis.net/def/rel/ogc/1.0/queryables", SCHEMA,
                       "queryables"),
                  link(f"{url}/queryables", "queryables", JSON, "queryables"),
                  link(f"{url}/schema", "describedby", SCHEMA, "schema of the features")],
    }


COUNT_NOTE = ("per-building count; null for a building outside your household scope (viewers and auditors: every "
              "building), and a filter on it sees the same null")


def _property_schemas(spec: Layer, kinds: dict[str, str]) -> dict[str, Any]:
    return {alias: {"title": alias, **_SCHEMA_TYPES.get(kinds.get(alias, "string"), {"type": "string"}),
                    **({"description": COUNT_NOTE} if alias in spec.counts else {})}
            for alias in spec.columns}


def queryables(base: str, name: str, spec: Layer, kinds: dict[str, str]) -> dict[str, Any]:
    """JSON Schema of what a filter may name; ``queryables`` repeats it in the draft form GDAL 3.6 reads."""
    props = _property_schemas(spec, kinds)
    props["geometry"] = {"format": f"geometry-{spec.geometry_type.lower()}",
                         "$ref": f"https://geojson.org/schema/{spec.geometry_type}.json"}
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema", "$id": f"{base}/collections/{name}/queryables",
        "type": "object", "title": f"{spec.label_zh} · {spec.label_en}", "properties": props,
        "additionalProperties": False,
        "queryables": [{"id": alias, "type": schema.get("format", schema.get("type"))}
                       for alias, schema in props.items()],
    }


def feature_schema(base: str, name: str, spec: Layer, kinds: dict[str, str]) -> dict[str, Any]:
    """JSON Schema of one GeoJSON feature of the collection (GDAL reads field types from it)."""
    return {
        "$schema": "https://json-schema.org/draft/2019-09/schema", "$id": f"{base}/collections/{name}/schema",
        "type": "object", "title": f"{spec.label_zh} · {spec.label_en}",
        "properties": {
            "type": {"type": "string", "enum": ["Feature"]},
            "id": _SCHEMA_TYPES.get(kinds.get(spec.key, "string"), {"type": "string"}),
            "geometry": {"$ref": f"https://geojson.org/schema/{spec.geometry_type}.json"},
            "properties": {"type": "object", "properties": _property_schemas(spec, kinds)},
        },
    }


def feature(f: Feature, crs: OgcCrs, base: str, name: str) -> dict[str, Any]:
    geometry = json.loads(shapely.to_geojson(crs.from_wgs84(f.geometry)))
    return {"type": "Feature", "id": f.id, "geometry": geometry, "properties": f.properties,
            "links": [link(f"{base}/collections/{name}/items/{f.id}", "self", GEOJSON),
                      link(f"{base}/collections/{name}", "collection", JSON)]}


def feature_collection(features: list[Feature], crs: OgcCrs, *, matched: int, links: list[dict]) -> dict[str, Any]:
    geoms = [crs.from_wgs84(f.geometry) for f in features]
    return {
        "type": "FeatureCollection",
        "features": [{"type": "Feature", "id": f.id, "geometry": json.loads(shapely.to_geojson(g)),
                      "properties": f.properties} for f, g in zip(features, geoms, strict=True)],
        "numberMatched": matched, "numberReturned": len(features),
        "timeStamp": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "links": links,
    }
