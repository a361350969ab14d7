"""Who is asking, and what they may see.

A :class:`Principal` is the authenticated caller. Scope rules (shared/domain.md §6):
admin sees everything; a grid worker sees the grids assigned to them; other roles with a ``scope_code``
see their division's subtree (codes starting with the division's significant prefix); a role without a
scope code and no assignments sees no personal data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from spatial.errors import Forbidden
from spatial.geometry.codes import scope_prefix

ROLE_RANK = {"viewer": 0, "auditor": 0, "grid_worker": 1, "inspector": 2, "planner": 2, "admin": 9}


@dataclass(frozen=True)
class Principal:
    user_id: int
    username: str
    role: str
    scope_code: str | None = None
    grid_ids: frozenset[int] = field(default_factory=frozenset)
    client_addr: str | None = None

    @property
    def code_prefix(self) -> str | None:
        """Prefix every visible division/grid/building code starts with; '' for admin (all), None for none."""
        if self.role == "admin":
            return ""
        return scope_prefix(self.scope_code) if self.scope_code else None

    def require_role(self, *roles: str) -> None:
        """Raise Forbidden unless the caller has one of ``roles`` (admin always passes)."""
        if self.role != "admin" and self.role not in roles:
            raise Forbidden(f"this needs the role {' or '.join(roles)}; you are {self.role}")

    def require_scope(self, code: str) -> None:
        """Raise Forbidden unless ``code`` (a division, grid or building code) lies in the caller's scope."""
        if not self.may_see_code(code):
            raise Forbidden(f"{code} is outside your area ({self.scope_code or 'no area assigned'})")

    def may_see_code(self, code: str) -> bool:
        """Whether a division, grid or building with this code lies in the caller's scope (not grid assignments)."""
        prefix = self.code_prefix
        return prefix is not None and code.startswith(prefix)
