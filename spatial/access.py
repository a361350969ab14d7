"""Who is asking, and what they may see.

A :class:`Principal` is the authenticated caller. Scope rules (shared/domain.md §6, decision 0004):

* **area** (:attr:`Principal.area`): admin everything; a grid worker the grids assigned to them; other roles
  with a ``scope_code`` their division's subtree (codes starting with the division's significant prefix); a
  role without a scope code and no assignments nothing. It decides which grids, campaigns, enclosures a caller
  works with.
* **household data** (:attr:`Principal.household_scope`, the one rule every household path uses): the caller's
  area if the role reads households at all (:data:`HOUSEHOLD_ROLES` and admin), else nothing. Household data is
  a household row (masked or not), its tags, and the per-building household and resident counts (layers, OGC,
  tiles, exports). Viewers and auditors never read household data, whatever their scope code; per-grid totals
  (grids of 300–500 households) are workload figures, not household data.

The grid team (issue 17, decision 0020; their assignments are ``team_assignments``, :mod:`spatial.store.team`):

* a **police officer** (网格警员) works in the grids of their team assignments (:attr:`Principal.grid_ids`, as a
  grid worker does) and reads their households, masked and audited like everyone's; never reveals;
* a **building head** (楼栋长) or **unit head** (单元长) works in the buildings of theirs (a micro-grid's
  assignment: its buildings; :attr:`Principal.building_ids`) and reads those households, masked; nothing else
  of the city (no grid, campaign or enclosure); they report cases in their buildings
  (:func:`spatial.store.cases.report_case`);
* **medical staff** (医护人员) and **department specialists** (部门专员) work in their grids (cases, grids) and
  read no household data; **volunteers** (志愿者) have no area. These three, and the roles above, see the
  households of the tasks handed to them (:mod:`spatial.store.tasks`), masked, and nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial.errors import Forbidden
from spatial.geometry.codes import scope_prefix

ROLE_RANK = {"viewer": 0, "auditor": 0, "volunteer": 0, "building_head": 0, "unit_head": 0, "department": 1,
             "grid_worker": 1, "police": 1, "medical": 1, "specialist": 1, "inspector": 2, "planner": 2, "admin": 9}
HOUSEHOLD_ROLES = ("grid_worker", "planner", "inspector", "police", "building_head", "unit_head")
"""The roles that read household data within their area (admin reads all); every other role reads none."""
GRID_TEAM_ROLES = ("police", "medical", "specialist")
"""Team roles whose area is the grids of their team assignments (as a grid worker's is their grids)."""
BUILDING_ROLES = ("building_head", "unit_head")
"""Team roles whose area is the buildings of their team assignments (buildings, or a micro-grid's buildings)."""
TEAM_ROLES = (*GRID_TEAM_ROLES, *BUILDING_ROLES, "volunteer")
"""The roles of issue 17 (the grid team), assigned through ``team_assignments`` rather than a scope code."""


@dataclass(frozen=True)
class Scope:
    """A part of the city: ``everything``; or the grids ``grid_ids``; or the divisions, grids and buildings whose
    code (a building: its community's code) starts with ``prefix``; or the buildings ``building_ids`` (a building
    head's: no grid, division or campaign is in it, only those buildings and their households); or, with none of
    them, nothing."""

    everything: bool = False
    grid_ids: frozenset[int] = frozenset()
    prefix: str | None = None
    building_ids: frozenset[int] = frozenset()

    @property
    def nothing(self) -> bool:
        return not (self.everything or self.grid_ids or self.prefix or self.building_ids)

    @property
    def key(self) -> str:
        """A string naming the scope (cache keys): 'all', 'grids:<ids>', 'prefix:<prefix>', 'buildings:<ids>' or
        'none'."""
        if self.everything:
            return "all"
        if self.grid_ids:
            return "grids:" + ",".join(str(g) for g in sorted(self.grid_ids))
        if self.building_ids:
            return "buildings:" + ",".join(str(b) for b in sorted(self.building_ids))
        return f"prefix:{self.prefix}" if self.prefix else "none"

    @classmethod
    def from_key(cls, key: str) -> Scope:
        """The scope :attr:`key` names (anything else: nothing)."""
        kind, _, value = key.partition(":")
        if kind == "all":
            return cls(everything=True)
        if kind == "grids" and value:
            return cls(grid_ids=frozenset(int(g) for g in value.split(",")))
        if kind == "prefix" and value:
            return cls(prefix=value)
        if kind == "buildings" and value:
            return cls(building_ids=frozenset(int(b) for b in value.split(",")))
        return NOTHING


NOTHING = Scope()


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str
    scope_code: str | None = None
    grid_ids: frozenset[int] = field(default_factory=frozenset)
    client_addr: str | None = None
    token_id: int | None = None
    """The personal access token the caller authenticated with (HTTP Basic; read-only), None for a login."""
    department: str | None = None
    """For the role ``department`` (责任部门): the department's name, as cases are dispatched to it (a category's
    ``department``). Such a caller sees and handles only the cases dispatched to the department or to them."""
    building_ids: frozenset[int] = field(default_factory=frozenset)
    """For building and unit heads (:data:`BUILDING_ROLES`): the buildings of their current team assignments."""

    @property
    def code_prefix(self) -> str | None:
        """Prefix every visible division/grid/building code starts with; '' for admin (all), None for none."""
        if self.role == "admin":
            return ""
        if self.role in TEAM_ROLES:
            return None  # team members work in their assignments, never in a division's subtree
        return scope_prefix(self.scope_code) if self.scope_code else None

    @property
    def area(self) -> Scope:
        """The part of the city the caller works in (module docstring)."""
        if self.role == "admin":
            return Scope(everything=True)
        if self.role == "grid_worker" or self.role in GRID_TEAM_ROLES:
            return Scope(grid_ids=frozenset(self.grid_ids)) if self.grid_ids else NOTHING
        if self.role in BUILDING_ROLES:
            return Scope(building_ids=frozenset(self.building_ids)) if self.building_ids else NOTHING
        if self.role == "volunteer":
            return NOTHING
        return Scope(prefix=self.code_prefix) if self.code_prefix else NOTHING

    @property
    def reads_households(self) -> bool:
        """Whether the role reads household data at all (admin and :data:`HOUSEHOLD_ROLES`)."""
        return self.role == "admin" or self.role in HOUSEHOLD_ROLES

    @property
    def household_scope(self) -> Scope:
        """Whose household data the caller may read: their :attr:`area` if the role reads households, else
        nothing (viewers and auditors, whatever their scope code)."""
        return self.area if self.reads_households else NOTHING

    def require_household_read(self) -> Scope:
        """:attr:`household_scope`, or Forbidden for a role that never reads household data. The scope may still
        be empty (a planner without scope code, a worker without grids): the caller then finds nothing."""
        if not self.reads_households:
            raise Forbidden(f"{self.role}s see no household data, not even counts (household data needs the role "
                            f"{' or '.join(HOUSEHOLD_ROLES)})")
        return self.household_scope

    def require_role(self, *roles: str) -> None:
        """Raise Forbidden unless the caller has one of ``roles`` (admin always passes)."""
        if self.role != "admin" and self.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}; you are {self.role}")

    def require_scope(self, code: str) -> None:
        """Raise Forbidden unless ``code`` (a division, grid or building code) lies in the caller's scope."""
        if not self.may_see_code(code):
            if not self.scope_code:
                raise Forbidden(f"{code} is outside your area (no area assigned)", code="scope.no_area", what=code)
            raise Forbidden(f"{code} is outside your area ({self.scope_code})", code="scope.outside_area", what=code,
                            area=self.scope_code)

    def may_see_code(self, code: str) -> bool:
        """Whether a division, grid or building with this code lies in the caller's scope (not grid assignments)."""
        prefix = self.code_prefix
        return prefix is not None and code.startswith(prefix)
