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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial.errors import Forbidden
from spatial.geometry.codes import scope_prefix

ROLE_RANK = {"viewer": 0, "auditor": 0, "department": 1, "grid_worker": 1, "inspector": 2, "planner": 2, "admin": 9}
HOUSEHOLD_ROLES = ("grid_worker", "planner", "inspector")
"""The roles that read household data within their area (admin reads all); every other role reads none."""


@dataclass(frozen=True)
class Scope:
    """A part of the city: ``everything``; or the grids ``grid_ids``; or the divisions, grids and buildings whose
    code (a building: its community's code) starts with ``prefix``; or, with none of them, nothing."""

    everything: bool = False
    grid_ids: frozenset[int] = frozenset()
    prefix: str | None = None

    @property
    def nothing(self) -> bool:
        return not (self.everything or self.grid_ids or self.prefix)

    @property
    def key(self) -> str:
        """A string naming the scope (cache keys): 'all', 'grids:<ids>', 'prefix:<prefix>' or 'none'."""
        if self.everything:
            return "all"
        if self.grid_ids:
            return "grids:" + ",".join(str(g) for g in sorted(self.grid_ids))
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

    @property
    def code_prefix(self) -> str | None:
        """Prefix every visible division/grid/building code starts with; '' for admin (all), None for none."""
        if self.role == "admin":
            return ""
        return scope_prefix(self.scope_code) if self.scope_code else None

    @property
    def area(self) -> Scope:
        """The part of the city the caller works in (module docstring)."""
        if self.role == "admin":
            return Scope(everything=True)
        if self.role == "grid_worker":
            return Scope(grid_ids=frozenset(self.grid_ids))
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
