"""Domain errors. Each maps to exactly one HTTP status in :mod:`api.errors`.

Messages are written for the person who sent the input (a planner, a field worker): they say what is
wrong and, where possible, what to do about it. ``detail`` carries structured extras (a feature index,
the offending coordinates, the conflicting version) for clients that want them.
"""

from __future__ import annotations

from typing import Any


class GridgovError(Exception):
    """Base of every error raised on purpose by gridgov."""

    def __init__(self, message: str, *, code: str | None = None, **detail: Any) -> None:
        """``message`` the English sentence; ``code`` its entry in :mod:`spatial.messages` (the pages' Chinese and
        English text, filled from ``detail``); None: the kind's own entry, which shows ``message``."""
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail


class InvalidInput(GridgovError):
    """The input cannot be used as sent (bad geometry, out-of-range value, malformed file)."""


class UnknownCRS(InvalidInput):
    """A coordinate reference system name or code that gridgov does not know."""


class NotFound(GridgovError):
    """The object does not exist, or the caller may not know that it exists."""


class OutOfScope(NotFound):
    """Nothing in the caller's scope answers to this id or code: it does not exist, or scope hides it. Answered
    exactly like :class:`NotFound` (404, kind NotFound), so the answer does not tell which; audited as a
    refusal, so probing outside one's area leaves a trace. Raise it wherever a lookup is limited by scope."""


class Conflict(GridgovError):
    """The change contradicts stored data (duplicate code, overlap with a neighbour...)."""


class StaleEdit(GridgovError):
    """The caller edited an older version than the one stored (If-Match mismatch)."""


class NotAuthenticated(GridgovError):
    """No valid credentials were presented."""


class Forbidden(GridgovError):
    """The caller is known but their role or scope does not allow this."""


class PayloadTooLarge(GridgovError):
    """The request or geometry is larger than gridgov accepts."""


class TooManyRequests(GridgovError):
    """The caller has done this too often recently (failed logins, reveals); ``retry_after_s`` says when to retry."""

    def __init__(self, message: str, *, retry_after_s: int, **detail: Any) -> None:
        super().__init__(message, retry_after_s=retry_after_s, **detail)
        self.retry_after_s = retry_after_s


class DatabaseUnavailable(GridgovError):
    """The database cannot be reached; the request may be retried."""


class SetupError(GridgovError):
    """The machine lacks something gridgov needs (PostgreSQL, PostGIS, pgRouting); the message says how to fix it."""


class UpstreamFailed(GridgovError):
    """A service gridgov relays for the caller (a basemap's tile server) failed or answered something unusable;
    the message says which host and what to check, never the URL (it may hold a key)."""


class UpstreamTimeout(UpstreamFailed):
    """That service did not answer in time."""


class PreconditionRequired(GridgovError):
    """A change to versioned data was sent without saying which version it edits (If-Match)."""
