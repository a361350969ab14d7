"""CQL2 trees (:mod:`spatial.cql2`) compiled to SQL on a layer's queryable columns, with bound parameters.

Only the layer's queryables can be named: each property becomes the SQL expression the layer defines for
it (``spatial.store.layers.Layer.columns``) and every value a bound parameter cast to that column's type,
so a filter can neither reach another column nor inject SQL. A value that does not fit the column's type
(``households = 'many'``) is an :class:`InvalidInput`, not a database error. Geometry literals must already
be in EPSG:4326 (lon, lat); spatial predicates use the stored geometry so its GiST index applies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import shapely

from spatial import cql2
from spatial.errors import InvalidInput

SQL_TYPES = {"integer": "bigint", "number": "double precision", "boolean": "boolean", "string": "text",
             "date": "date", "date-time": "timestamptz"}
_SPATIAL_SQL = {"s_intersects": "ST_Intersects({g}, {v})", "s_disjoint": "NOT ST_Intersects({g}, {v})",
                "s_within": "ST_Within({g}, {v})", "s_contains": "ST_Contains({g}, {v})"}
GEOMETRY = "geometry"


@dataclass
class Compiler:
    """``columns``: queryable name → (SQL expression, kind); kind is a key of :data:`SQL_TYPES`.
    ``geometry``: the SQL expression of the stored geometry (queryable as ``geometry``)."""

    columns: dict[str, tuple[str, str]]
    geometry: str
    params: dict[str, Any] = field(default_factory=dict)

    def compile(self, node: Any) -> str:
        method = getattr(self, "_" + type(node).__name__.lower(), None)
        if method is None:
            raise InvalidInput(f"filter part {type(node).__name__} is not supported here")
        return method(node)

    def _param(self, value: Any, kind: str) -> str:
        name = f"cql{len(self.params)}"
        self.params[name] = _coerce(value, kind)
        return f"CAST(:{name} AS {SQL_TYPES[kind]})"

    def _prop(self, prop: cql2.Prop) -> tuple[str, str]:
        if prop.name in self.columns:
            return self.columns[prop.name]
        queryable = ", ".join(sorted(self.columns)) + f", {GEOMETRY}"
        raise InvalidInput(f"filter names {prop.name!r}, which is not a queryable of this collection "
                           f"(queryables: {queryable})", property=prop.name)

    def _kind(self, operands: tuple[Any, ...]) -> str:
        """The one type all ``operands`` are compared as: the first property's, else the first literal's.
        Properties of another type are refused (integer and number mix)."""
        props = [self._prop(o)[1] for o in operands if isinstance(o, cql2.Prop)]
        kind = props[0] if props else _kind_of(operands[0].value)
        numeric = {"integer", "number"}
        for other in props[1:]:
            if other != kind and not {other, kind} <= numeric:
                raise InvalidInput(f"filter compares a {kind} with a {other} property")
        return "number" if len(set(props)) > 1 else kind

    def _operand(self, node: cql2.Prop | cql2.Lit, kind: str) -> str:
        """SQL of an operand compared as ``kind`` (a literal becomes a bound parameter of that type)."""
        if isinstance(node, cql2.Prop):
            return self._prop(node)[0]
        return self._param(node.value, kind)

    def _pair(self, left: Any, right: Any) -> tuple[str, str]:
        kind = self._kind((left, right))
        return self._operand(left, kind), self._operand(right, kind)

    def _compare(self, node: cql2.Compare) -> str:
        left, right = self._pair(node.left, node.right)
        return f"({left} {node.op} {right})"

    def _like(self, node: cql2.Like) -> str:
        item = self._operand(node.item, "string")
        op = ("NOT " if node.negated else "") + ("ILIKE" if node.case_insensitive else "LIKE")
        return f"(CAST({item} AS text) {op} {self._param(node.pattern, 'string')})"

    def _between(self, node: cql2.Between) -> str:
        kind = self._kind((node.item, node.low, node.high))
        item, low, high = (self._operand(o, kind) for o in (node.item, node.low, node.high))
        return f"({item} {'NOT ' if node.negated else ''}BETWEEN {low} AND {high})"

    def _in(self, node: cql2.In) -> str:
        kind = self._kind((node.item, *node.values))
        item = self._operand(node.item, kind)
        values = ", ".join(self._operand(v, kind) for v in node.values)
        return f"({item} {'NOT ' if node.negated else ''}IN ({values}))"

    def _isnull(self, node: cql2.IsNull) -> str:
        item = self._operand(node.item, self._kind((node.item,)))
        return f"({item} IS {'NOT ' if node.negated else ''}NULL)"

    def _spatial(self, node: cql2.Spatial) -> str:
        if node.prop.name != GEOMETRY:
            raise InvalidInput(f"{node.op.upper()} applies to the property {GEOMETRY!r}, not {node.prop.name!r}")
        name = f"cql{len(self.params)}"
        self.params[name] = shapely.to_wkb(node.geometry.geometry)
        value = f"ST_GeomFromWKB(:{name}, 4326)"
        return "(" + _SPATIAL_SQL[node.op].format(g=self.geometry, v=value) + ")"

    def _and(self, node: cql2.And) -> str:
        return "(" + " AND ".join(self.compile(item) for item in node.items) + ")"

    def _or(self, node: cql2.Or) -> str:
        return "(" + " OR ".join(self.compile(item) for item in node.items) + ")"

    def _not(self, node: cql2.Not) -> str:
        return f"(NOT {self.compile(node.item)})"

    def _const(self, node: cql2.Const) -> str:
        return "TRUE" if node.value else "FALSE"


def compile_filter(node: Any, columns: dict[str, tuple[str, str]], geometry: str) -> tuple[str, dict[str, Any]]:
    """(SQL boolean expression, bound parameters) of a parsed filter. Parameters are named ``cql<n>``."""
    compiler = Compiler(columns, geometry)
    return compiler.compile(node), compiler.params


def _kind_of(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, datetime):
        return "date-time"
    if isinstance(value, date):
        return "date"
    return "string"


def _coerce(value: Any, kind: str) -> Any:
    """``value`` as the Python type of ``kind``; InvalidInput when it does not fit."""
    try:
        if kind == "string":
            return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)
        if kind == "integer":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            if not -2**63 <= int(value) < 2**63:
                raise ValueError
            return int(value)
        if kind == "number":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "boolean":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            raise ValueError
        if kind == "date-time":
            return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        if kind == "date":
            return value if isinstance(value, date) else date.fromisoformat(str(value))
    except (TypeError, ValueError, OverflowError):
        pass
    raise InvalidInput(f"filter value {value!r} does not fit a property of type {kind}", value=str(value))
