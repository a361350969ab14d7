"""A parser for a useful subset of CQL2 text (OGC 21-065), with no database and no ``eval``.

Grammar (keywords case-insensitive; properties are identifiers or "double-quoted"; strings 'single-quoted'
with '' for a quote)::

    expr       := or
    or         := and ("OR" and)*
    and        := not ("AND" not)*
    not        := "NOT" not | "(" expr ")" | predicate
    predicate  := operand op operand                       op ∈ = <> < <= > >=
                | operand ["NOT"] ("LIKE" | "ILIKE") string
                | operand ["NOT"] "BETWEEN" operand "AND" operand
                | operand ["NOT"] "IN" "(" operand ("," operand)* ")"
                | operand "IS" ["NOT"] "NULL"
                | spatial "(" property "," geometry ")"   spatial ∈ S_INTERSECTS S_DISJOINT S_WITHIN S_CONTAINS
                | "TRUE" | "FALSE"
    operand    := property | string | number | TRUE | FALSE | DATE('…') | TIMESTAMP('…')
    geometry   := BBOX(x1, y1, x2, y2) | POINT(x y) | LINESTRING(…) | POLYGON((…)) | MULTIPOLYGON(((…)))
                  (WKT; coordinates are lon/lat, or in the ``filter-crs`` the caller names)

The result is a small tree of frozen dataclasses; :mod:`spatial.store.cql2_sql` turns it into SQL with bound
parameters against a layer's queryable columns. Errors are :class:`spatial.errors.InvalidInput` saying where
the text went wrong. Input is limited to :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` nesting levels.

>>> parse("households > 100 AND use IN ('residential', 'mixed')")
And(items=(Compare(op='>', left=Prop(name='households'), right=Lit(value=100)), In(item=Prop(name='use'), \
values=(Lit(value='residential'), Lit(value='mixed')), negated=False)))
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import shapely

from spatial.errors import InvalidInput

MAX_LENGTH = 20_000
MAX_DEPTH = 50


@dataclass(frozen=True)
class Prop:
    name: str


@dataclass(frozen=True)
class Lit:
    value: Any  # str, int, float, bool, date or datetime


@dataclass(frozen=True)
class Geom:
    geometry: shapely.Geometry  # in the filter's CRS (lon/lat unless filter-crs says otherwise)


@dataclass(frozen=True)
class Compare:
    op: str
    left: Prop | Lit
    right: Prop | Lit


@dataclass(frozen=True)
class Like:
    item: Prop | Lit
    pattern: str
    negated: bool = False
    case_insensitive: bool = False


@dataclass(frozen=True)
class Between:
    item: Prop | Lit
    low: Prop | Lit
    high: Prop | Lit
    negated: bool = False


@dataclass(frozen=True)
class In:
    item: Prop | Lit
    values: tuple[Prop | Lit, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    item: Prop | Lit
    negated: bool = False


@dataclass(frozen=True)
class Spatial:
    op: str  # s_intersects, s_disjoint, s_within, s_contains
    prop: Prop
    geometry: Geom


@dataclass(frozen=True)
class And:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Any, ...]


@dataclass(frozen=True)
class Not:
    item: Any


@dataclass(frozen=True)
class Const:
    value: bool


SPATIAL_OPS = ("s_intersects", "s_disjoint", "s_within", "s_contains")
COMPARISONS = ("=", "<>", "<", "<=", ">", ">=")
_KEYWORDS = {"and", "or", "not", "like", "ilike", "between", "in", "is", "null", "true", "false"}

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<number>[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<qident>"(?:[^"]|"")+")
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.:]*)
  | (?P<op><>|<=|>=|!=|=|<|>)
  | (?P<punct>[(),])
""", re.VERBOSE)


@dataclass(frozen=True)
class _Tok:
    kind: str
    text: str
    pos: int


def _tokens(source: str) -> list[_Tok]:
    tokens, pos = [], 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if match is None:
            raise _error(source, pos, f"unexpected character {source[pos]!r}")
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(_Tok(kind, match.group(), pos))
        pos = match.end()
    tokens.append(_Tok("end", "", len(source)))
    return tokens


def _error(source: str, pos: int, message: str) -> InvalidInput:
    snippet = source[max(0, pos - 20):pos + 20]
    return InvalidInput(f"filter is not valid CQL2 text: {message} at character {pos + 1} (…{snippet}…)",
                        position=pos + 1)


class _Parser:
    def __init__(self, source: str) -> None:
        self.source = source
        self.tokens = _tokens(source)
        self.i = 0
        self.depth = 0

    # -- token helpers -------------------------------------------------------------------------------
    @property
    def tok(self) -> _Tok:
        return self.tokens[self.i]

    def word(self, offset: int = 0) -> str:
        tok = self.tokens[min(self.i + offset, len(self.tokens) - 1)]
        return tok.text.lower() if tok.kind == "ident" else ""

    def take(self) -> _Tok:
        tok = self.tok
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        tok = self.take()
        if tok.text.lower() != text:
            raise self.fail(f"expected {text.upper() if text.isalpha() else repr(text)}", tok)

    def fail(self, message: str, tok: _Tok | None = None) -> InvalidInput:
        tok = tok or self.tok
        found = "the end" if tok.kind == "end" else repr(tok.text)
        return _error(self.source, tok.pos, f"{message}, found {found}")

    # -- grammar ---------------------------------------------------------------------------------------
    def parse(self) -> Any:
        node = self.or_()
        if self.tok.kind != "end":
            raise self.fail("expected AND, OR or the end of the filter")
        return node

    def or_(self) -> Any:
        items = [self.and_()]
        while self.word() == "or":
            self.take()
            items.append(self.and_())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_(self) -> Any:
        items = [self.not_()]
        while self.word() == "and":
            self.take()
            items.append(self.not_())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.fail(f"the filter nests deeper than {MAX_DEPTH} levels")
        try:
            if self.word() == "not":
                self.take()
                return Not(self.not_())
            if self.tok.text == "(":
                self.take()
                node = self.or_()
                self.expect(")")
                return node
            return self.predicate()
        finally:
            self.depth -= 1

    def predicate(self) -> Any:
        if self.word() in SPATIAL_OPS and self.tokens[self.i + 1].text == "(":
            return self.spatial()
        if self.word() in ("true", "false") and (self.tokens[self.i + 1].kind == "end"
                                                  or self.word(1) in ("and", "or")
                                                  or self.tokens[self.i + 1].text == ")"):
            return Const(self.take().text.lower() == "true")
        left = self.operand()
        negated = False
        if self.word() == "not" and self.word(1) in ("like", "ilike", "between", "in"):
            self.take()
            negated = True
        word = self.word()
        if word in ("like", "ilike"):
            self.take()
            pattern = self.operand()
            if not (isinstance(pattern, Lit) and isinstance(pattern.value, str)):
                raise self.fail("LIKE needs a 'quoted' pattern", self.tokens[self.i - 1])
            return Like(left, pattern.value, negated, word == "ilike")
        if word == "between":
            self.take()
            low = self.operand()
            self.expect("and")
            return Between(left, low, self.operand(), negated)
        if word == "in":
            self.take()
            self.expect("(")
            values = [self.operand()]
            while self.tok.text == ",":
                self.take()
                values.append(self.operand())
            self.expect(")")
            return In(left, tuple(values), negated)
        if word == "is":
            self.take()
            is_not = self.word() == "not"
            if is_not:
                self.take()
            self.expect("null")
            return IsNull(left, is_not)
        if self.tok.kind == "op":
            op = self.take().text
            return Compare("<>" if op == "!=" else op, left, self.operand())
        raise self.fail("expected a comparison (=, <>, <, <=, >, >=), LIKE, BETWEEN, IN or IS NULL")

    def operand(self) -> Prop | Lit:
        tok = self.tok
        if tok.kind == "string":
            self.take()
            return Lit(tok.text[1:-1].replace("''", "'"))
        if tok.kind == "number":
            self.take()
            text = tok.text
            return Lit(float(text) if any(c in text for c in ".eE") else int(text))
        if tok.kind == "qident":
            self.take()
            return Prop(tok.text[1:-1].replace('""', '"'))
        if tok.kind == "ident":
            word = tok.text.lower()
            if word in ("true", "false"):
                self.take()
                return Lit(word == "true")
            if word in ("date", "timestamp") and self.tokens[self.i + 1].text == "(":
                return self.temporal(word)
            if word in _KEYWORDS:
                raise self.fail("expected a property or a value")
            self.take()
            return Prop(tok.text)
        raise self.fail("expected a property or a value")

    def temporal(self, kind: str) -> Lit:
        self.take()
        self.expect("(")
        tok = self.take()
        if tok.kind != "string":
            raise self.fail(f"{kind.upper()} needs a 'quoted' value", tok)
        self.expect(")")
        value = tok.text[1:-1]
        try:
            if kind == "date":
                return Lit(date.fromisoformat(value))
            return Lit(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            raise _error(self.source, tok.pos, f"{value!r} is not an ISO 8601 {kind}") from None

    def spatial(self) -> Spatial:
        op = self.take().text.lower()
        self.expect("(")
        prop = self.operand()
        if not isinstance(prop, Prop):
            raise self.fail(f"{op.upper()} needs the geometry property first", self.tokens[self.i - 1])
        self.expect(",")
        geometry = self.geometry()
        self.expect(")")
        return Spatial(op, prop, geometry)

    def geometry(self) -> Geom:
        start = self.tok
        kind = self.word()
        if kind == "bbox":
            self.take()
            self.expect("(")
            numbers = [self.number()]
            while self.tok.text == ",":
                self.take()
                numbers.append(self.number())
            self.expect(")")
            if len(numbers) == 6:
                numbers = [numbers[0], numbers[1], numbers[3], numbers[4]]
            if len(numbers) != 4 or not (numbers[0] <= numbers[2] and numbers[1] <= numbers[3]):
                raise _error(self.source, start.pos, "BBOX needs minx, miny, maxx, maxy with min ≤ max")
            return Geom(shapely.box(*numbers))
        if kind not in ("point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                        "geometrycollection"):
            raise self.fail("expected a geometry: BBOX(…), POINT(…), POLYGON((…)) …")
        self.take()
        depth, begin = 0, self.tok.pos
        while True:
            tok = self.take()
            if tok.kind == "end":
                raise self.fail("the geometry is not closed", tok)
            depth += {"(": 1, ")": -1}.get(tok.text, 0)
            if depth == 0:
                break
        wkt = start.text + self.source[begin:tok.pos + 1]
        try:
            geometry = shapely.from_wkt(wkt)
        except shapely.errors.GEOSException as exc:
            raise _error(self.source, start.pos, f"bad {kind.upper()} literal ({exc})") from None
        if geometry.is_empty or not shapely.is_valid(geometry):
            raise _error(self.source, start.pos,
                         f"the {kind.upper()} is empty or invalid ({shapely.is_valid_reason(geometry)})")
        return Geom(geometry)

    def number(self) -> float:
        tok = self.take()
        if tok.kind != "number":
            raise self.fail("expected a number", tok)
        return float(tok.text)


def parse(text: str) -> Any:
    """The tree of a CQL2 text filter; :class:`InvalidInput` with the position of the first error."""
    if not text or not text.strip():
        raise InvalidInput("filter is empty")
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"filter is longer than {MAX_LENGTH:,} characters")
    return _Parser(text).parse()


def properties(node: Any) -> set[str]:
    """Names of every property the filter mentions."""
    if isinstance(node, Prop):
        return {node.name}
    if isinstance(node, (And, Or)):
        return set().union(*(properties(item) for item in node.items))
    found: set[str] = set()
    for value in vars(node).values() if hasattr(node, "__dataclass_fields__") else ():
        if isinstance(value, tuple):
            for item in value:
                found |= properties(item)
        elif hasattr(value, "__dataclass_fields__"):
            found |= properties(value)
    return found


def map_geometries(node: Any, fn) -> Any:
    """A copy of the tree with every geometry literal replaced by ``fn(geometry)`` (e.g. to EPSG:4326)."""
    if isinstance(node, Spatial):
        return Spatial(node.op, node.prop, Geom(fn(node.geometry.geometry)))
    if isinstance(node, (And, Or)):
        return type(node)(tuple(map_geometries(item, fn) for item in node.items))
    if isinstance(node, Not):
        return Not(map_geometries(node.item, fn))
    return node
