"""TileJSON 3.0 documents and a MapLibre GL style whose ``source-layer`` names are the tile layers.

URLs are built by the caller (the router knows the host); ``tile_url`` is a template with ``{z}/{x}/{y}``.
Colours follow the map page: grids blue, micro-grids teal, buildings grey (urban village buildings warm),
enclosures orange, checkpoints by status (staffed green, sealed red, unstaffed amber), cases blue when open and
grey when finished, with a red ring when overdue; risk zones in their level's colour (五色图: red, orange, yellow,
blue, green), more opaque the higher the level.
"""

from __future__ import annotations

from typing import Any

from tiles.grid import MAX_ZOOM
from tiles.sql import TileLayer, tile_layers

WORLD = [-180.0, -85.0511, 180.0, 85.0511]
_FIELD_TYPES = {"households": "Number", "residents": "Number", "levels": "Number", "version": "Number",
                "buildings": "Number", "seq": "Number", "grid_id": "Number", "staff_count": "Number",
                "enclosure_id": "Number", "urban_village": "Boolean", "occupancy_estimated": "Boolean",
                "oneway": "Boolean", "foot": "Boolean", "car": "Boolean", "open": "Boolean", "overdue": "Boolean",
                "severity": "Number"}


def vector_layer(layer: TileLayer) -> dict[str, Any]:
    return {"id": layer.name, "description": f"{layer.label_zh} · {layer.label_en}",
            "minzoom": layer.min_zoom, "maxzoom": MAX_ZOOM,
            "fields": {a: _FIELD_TYPES.get(a, "String") for a in layer.attributes}}


def tilejson(layers: list[TileLayer], tile_url: str, *, name: str, attribution: str = "") -> dict[str, Any]:
    """TileJSON for one layer or for the combined tiles of several."""
    return {
        "tilejson": "3.0.0", "name": name, "scheme": "xyz", "tiles": [tile_url],
        "minzoom": min(layer.min_zoom for layer in layers), "maxzoom": MAX_ZOOM, "bounds": WORLD,
        "attribution": attribution, "vector_layers": [vector_layer(layer) for layer in layers],
    }


def _paint(layer: TileLayer) -> list[dict[str, Any]]:
    base = {"source": "gridgov", "source-layer": layer.name, "minzoom": layer.min_zoom}
    name = layer.name
    if name == "households":
        return [{**base, "id": name, "type": "circle", "paint": {
            "circle-color": "#8e44ad", "circle-opacity": 0.7,
            "circle-radius": ["interpolate", ["linear"], ["get", "households"], 1, 3, 100, 12]}}]
    if name == "checkpoints":
        return [{**base, "id": name, "type": "circle", "paint": {
            "circle-radius": 5, "circle-stroke-color": "#ffffff", "circle-stroke-width": 1,
            "circle-color": ["match", ["get", "status"], "staffed", "#2e7d32", "sealed", "#c62828", "#f9a825"]}}]
    if name == "cases":
        overdue = ["==", ["get", "overdue"], True]
        return [{**base, "id": name, "type": "circle", "paint": {
            "circle-radius": ["case", overdue, 7, 5], "circle-stroke-width": ["case", overdue, 3, 1],
            "circle-stroke-color": ["case", overdue, "#d32f2f", "#ffffff"],
            "circle-color": ["match", ["get", "state"], ["closed", "rejected", "merged"], "#9e9e9e", "deferred", "#8d6e63",
                             "#1976d2"]}}]
    if name == "places":  # places departments inspect (一张网): a colour per kind; enterprises not back at work ringed
        stopped = ["==", ["get", "reopened"], False]
        return [{**base, "id": name, "type": "circle", "paint": {
            "circle-radius": 4, "circle-stroke-width": ["case", stopped, 2, 1],
            "circle-stroke-color": ["case", stopped, "#d32f2f", "#ffffff"],
            "circle-color": ["match", ["get", "kind"], ["shop", "restaurant", "hotel"], "#6a1b9a", "enterprise",
                             "#00838f", "school", "#f9a825", "clinic", "#2e7d32", "#757575"]}}]
    if name == "risk_zones":  # each zone in its level's colour (its scheme's), more opaque the higher the level
        return [{**base, "id": f"{name}-fill", "type": "fill", "paint": {
                    "fill-color": ["coalesce", ["get", "colour"], "#9e9e9e"],
                    "fill-opacity": ["interpolate", ["linear"], ["get", "severity"], 1, 0.15, 5, 0.4]}},
                {**base, "id": f"{name}-line", "type": "line", "paint": {
                    "line-color": ["coalesce", ["get", "colour"], "#616161"], "line-width": 2}}]
    if layer.geometry_type in ("LineString", "MultiLineString"):
        return [{**base, "id": name, "type": "line", "paint": {
            "line-color": "#9e9e9e", "line-width": ["interpolate", ["linear"], ["zoom"], 13, 0.5, 18, 3]}}]
    fill, outline, opacity = {
        "divisions": ("#000000", "#555555", 0.0), "grids": ("#1e88e5", "#1565c0", 0.08),
        "micro_grids": ("#00897b", "#00695c", 0.05), "enclosures": ("#fb8c00", "#e65100", 0.06),
    }.get(name, ("#b0a89f", "#8d8478", 0.8))
    if name == "buildings":
        fill = ["case", ["==", ["get", "urban_village"], True], "#d7a27a", "#b0a89f"]
    return [{**base, "id": f"{name}-fill", "type": "fill", "paint": {"fill-color": fill, "fill-opacity": opacity}},
            {**base, "id": f"{name}-line", "type": "line", "paint": {"line-color": outline, "line-width": 1}}]


def style(tilejson_url: str, *, name: str = "gridgov") -> dict[str, Any]:
    """A MapLibre GL style (version 8) drawing every tile layer from one vector source (the combined tiles)."""
    layers: list[dict[str, Any]] = [{"id": "background", "type": "background",
                                     "paint": {"background-color": "#f5f3ef"}}]
    for layer in tile_layers().values():
        layers.extend(_paint(layer))
    return {"version": 8, "name": name, "sources": {"gridgov": {"type": "vector", "url": tilejson_url}},
            "layers": layers}
