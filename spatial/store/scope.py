"""The SQL of a :class:`spatial.access.Scope`: one predicate, written once, for every query limited by scope.

Callers name which rule applies: ``who.household_scope`` for household data (rows, tags, per-building counts),
``who.area`` for grids, campaigns and enclosures (see :mod:`spatial.access`). Asking about a place outside one's
scope returns nothing rather than an error, so the answer does not tell whether anybody lives there.
"""

from __future__ import annotations

from typing import Any

from spatial.access import Scope


PREFIX_END = ":"
"""After the digits in code order (':' is U+003A, '9' U+0039): the division codes that start with a prefix ``p``
are those in [``p``, ``p`` + ':'). Stated so rather than ``LIKE 'p%'``, which PostgreSQL makes an index range only
under the ``C`` collation (the database's is ``C.UTF-8``): a subdistrict's rows are then read from an index led by
the community code instead of a scan of the whole index (decision 0028)."""


def prefix_range(column: str, name: str = "prefix") -> str:
    """SQL keeping the rows whose ``column`` (a division or grid code: digits) starts with a prefix, as an index
    range: the parameters ``:{name}_from`` and ``:{name}_to`` of :func:`prefix_bounds`. Stated so, never as
    ``LIKE 'p%'`` (see :data:`PREFIX_END`)."""
    return f"({column} >= :{name}_from AND {column} < :{name}_to)"


def prefix_bounds(prefix: str, name: str = "prefix") -> dict[str, str]:
    """The parameters of :func:`prefix_range` for the codes starting with ``prefix`` ('' keeps every code)."""
    return {f"{name}_from": prefix, f"{name}_to": prefix + PREFIX_END}


def scope_sql(scope: Scope, *, grid_col: str, community_col: str,
              building_col: str | None = None) -> tuple[str, dict[str, Any]]:
    """SQL predicate keeping the rows of ``scope``, given the SQL of their grid id and community code (and of their
    building id, for rows that belong to a building); and its parameters (``scope_grids``, ``scope_from``/``scope_to``,
    ``scope_buildings``). 'TRUE' for everything, 'FALSE' for nothing: one text per kind of scope, so statements
    built on it are prepared once per kind. A scope of buildings (a building head's) keeps nothing of rows
    without ``building_col`` (grids, cases, divisions): it is buildings and their households only."""
    if scope.everything:
        return "TRUE", {}
    if scope.grid_ids:
        return f"{grid_col} = ANY(CAST(:scope_grids AS integer[]))", {"scope_grids": sorted(scope.grid_ids)}
    if scope.prefix:
        return prefix_range(community_col, "scope"), prefix_bounds(scope.prefix, "scope")
    if scope.building_ids and building_col:
        return f"{building_col} = ANY(CAST(:scope_buildings AS bigint[]))", {"scope_buildings": sorted(scope.building_ids)}
    return "FALSE", {}


def is_code_range(scope: Scope) -> bool:
    """Whether :func:`scope_sql` states ``scope`` as a range of community codes (a division's area)."""
    return not scope.everything and not scope.grid_ids and bool(scope.prefix)


def building_scope(scope: Scope, alias: str = "b") -> tuple[str, dict[str, Any]]:
    """Predicate on a ``buildings`` alias: the building's current grid / community (or, for a scope of buildings,
    the building itself) is in ``scope`` (a caller's ``household_scope`` for household rows and counts, ``area``
    otherwise)."""
    return scope_sql(scope, grid_col=f"{alias}.grid_id", community_col=f"{alias}.community_code",
                     building_col=f"{alias}.id")


def grid_scope(scope: Scope, alias: str = "g") -> tuple[str, dict[str, Any]]:
    """Predicate on a ``grids`` alias: the grid is in ``scope``."""
    return scope_sql(scope, grid_col=f"{alias}.id", community_col=f"{alias}.community_code")


def campaign_scope(scope: Scope, alias: str = "c") -> tuple[str, dict[str, Any]]:
    """Predicate on a ``campaigns`` alias: one of the campaign's grids is in ``scope`` (a caller's ``area``: a
    campaign seen in part is seen)."""
    grids, params = grid_scope(scope)
    return (f"EXISTS (SELECT 1 FROM campaign_grids cg JOIN grids g ON g.id = cg.grid_id "
            f"WHERE cg.campaign_id = {alias}.id AND {grids})"), params
