"""The personal-data keys of a deployment (:mod:`spatial.personal_keys`), from its settings."""

from __future__ import annotations

from gridgov.settings import Settings
from spatial.personal_keys import PersonalKeys


def personal_keys(settings: Settings, *, create: bool | None = None) -> PersonalKeys:
    """The keys in ``settings.personal_key_path``. A missing file is created (0600, one random key) if ``create``;
    by default with the embedded cluster (no database URL), as the database is; with a configured server it must
    exist (KeyUnavailable)."""
    create = settings.database_url is None if create is None else create
    return PersonalKeys.load_or_create(settings.personal_key_path, create=create)
