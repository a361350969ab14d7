"""The personal-data keys of a deployment (:mod:`spatial.personal_keys`), from its settings."""

from __future__ import annotations

from gridgov.settings import Settings
from spatial.personal_keys import PersonalKeys


def personal_keys(settings: Settings) -> PersonalKeys:
    """The keys in ``settings.personal_key_path``; with the embedded cluster (no database URL) a missing file is
    created (0600, one random key), as the database is; with a configured server it must exist (KeyUnavailable)."""
    return PersonalKeys.load_or_create(settings.personal_key_path, create=settings.database_url is None)
