"""Merging departments' grids into the one comprehensive network (一张网): which grid takes each piece.

Plain data in, plain data out (no database): the crosswalk's pieces (:class:`Piece`: a department grid's part in one
comprehensive grid, or in none) become assignments (:class:`Assignment`). The rule, per department and comprehensive
grid: the department's grid holding most of that comprehensive grid's land takes all of it (ties: more building
floor plate, then the lower id). So each department grid becomes a union of whole comprehensive grids; a building
cut by a department boundary lies in one comprehensive grid and goes whole with it; land in no comprehensive grid
stays with its department grid (``outside``: the comprehensive grids do not cover it, which the planner must settle).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_MIN_SHARE = 0.01
"""A department grid spans several communities when at least two hold this share (0–1) of its land or more."""


@dataclass(frozen=True)
class Piece:
    """A department grid's part in one comprehensive grid (``grid_id`` None: in none). Land in m² and as a share
    (0–1) of the department grid's land; building floor plate (footprint m² inside the department grid) of the
    buildings assigned to that comprehensive grid, its share (None: no building in the department grid), and the
    number of those buildings mostly inside it."""

    department_grid: int
    grid_id: int | None
    grid_code: str | None
    community_code: str | None
    land_m2: float
    land_share: float
    building_m2: float
    building_share: float | None
    buildings: int


@dataclass(frozen=True)
class Assignment:
    """Who takes a piece: ``grid_code`` the comprehensive grid (None: none covers it) and ``to_department_grid``
    the department grid that covers it in the one network; ``action`` 'keep' (it stays with its department grid),
    'move' (another grid of the same department takes it) or 'outside'."""

    department_grid: int
    grid_id: int | None
    grid_code: str | None
    to_department_grid: int
    action: str
    land_m2: float


def propose(pieces: Sequence[Piece], department_of: dict[int, str]) -> list[Assignment]:
    """Assignments of every piece (module docstring); ``department_of`` maps a department grid to its department."""
    best: dict[tuple[str, int], Piece] = {}
    for p in pieces:
        if p.grid_id is None:
            continue
        key = (department_of[p.department_grid], p.grid_id)
        held = best.get(key)
        if held is None or (p.land_m2, p.building_m2, -p.department_grid) > (held.land_m2, held.building_m2,
                                                                               -held.department_grid):
            best[key] = p
    out = []
    for p in pieces:
        if p.grid_id is None:
            out.append(Assignment(p.department_grid, None, None, p.department_grid, "outside", p.land_m2))
            continue
        winner = best[(department_of[p.department_grid], p.grid_id)].department_grid
        out.append(Assignment(p.department_grid, p.grid_id, p.grid_code, winner,
                              "keep" if winner == p.department_grid else "move", p.land_m2))
    return out
