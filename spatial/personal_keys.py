"""Personal data at rest: ID and phone numbers sealed with AES-256-GCM, looked up by a keyed hash.

The key lives in a file outside the database (``Settings.personal_key_path``; see
docs/decisions/0015-personal-data-at-rest.md), so a database dump or backup alone reveals no ID or phone number.

Key file: text, one key a line, ``<id> <32 bytes, urlsafe base64>``; ``#`` starts a comment. The last line is the
*current* key (new values are sealed and hashed with it); earlier lines are older keys still able to open values
sealed before a rotation (``gridgov keys rotate`` appends a key, re-seals every value, then drops the old lines).
Ids are 1–255. The file is created 0600 and must not be readable by others.

From each key two subkeys are derived with HKDF-SHA256: one for AES-GCM, one for HMAC-SHA256.

* ``seal(field, value)`` → ``key id (1 byte) || nonce (12) || ciphertext || tag (16)``; the field name is the
  associated data, so a sealed phone number pasted into the ID column does not open.
* ``digest(field, value)`` → 32 bytes, HMAC-SHA256 of ``field NUL value`` under the current key: equal values
  give equal digests (exact lookup, duplicate detection) and nobody without the key can test a guess.
  ``digests(field, value)`` gives one per key in the file (a lookup during a rotation tries them all).

Pure: no database. Values are normalised by the caller (upper-case ``X``, digits only for phones).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from spatial.errors import InvalidInput, SetupError

if TYPE_CHECKING:
    from spatial.settings import Settings

KEY_BYTES = 32
NONCE_BYTES = 12


class KeyUnavailable(SetupError):
    """The personal-data key file is missing, unreadable, too open or malformed."""


@dataclass(frozen=True)
class _Key:
    id: int
    aead: AESGCM
    mac: bytes


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"gridgov personal data", info=purpose).derive(secret)


def _key(key_id: int, secret: bytes) -> _Key:
    return _Key(key_id, AESGCM(_derive(secret, b"aes-256-gcm")), _derive(secret, b"hmac-sha256"))


class PersonalKeys:
    """The keys of one key file; the last is current. Build with :meth:`load`, :meth:`create` or :meth:`of`."""

    def __init__(self, secrets: list[tuple[int, bytes]], path: Path | None = None) -> None:
        if not secrets:
            raise KeyUnavailable("the personal-data key file holds no key")
        ids = [i for i, _ in secrets]
        if len(set(ids)) != len(ids) or not all(1 <= i <= 255 for i in ids):
            raise KeyUnavailable("personal-data key ids must be distinct, 1–255")
        self.path = path
        self.secrets = list(secrets)
        self._keys = {i: _key(i, s) for i, s in secrets}
        self.current = self._keys[ids[-1]]

    # -- files ---------------------------------------------------------------------------------------------------
    @classmethod
    def of(cls, *secrets: bytes) -> PersonalKeys:
        """Keys from raw secrets (ids 1, 2, …; the last current), for tests."""
        return cls([(i + 1, s) for i, s in enumerate(secrets)])

    @classmethod
    def load(cls, path: Path) -> PersonalKeys:
        """Read ``path``; KeyUnavailable if it is missing, readable by group or others, or malformed."""
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except OSError as exc:
            raise KeyUnavailable(f"cannot read the personal-data key file {path}: {exc.strerror} (set "
                                 "GRIDGOV_PERSONAL_KEY_FILE, or run 'gridgov keys init')") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyUnavailable(f"the personal-data key file {path} is open to other users: chmod 600 it")
        secrets = []
        for number, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            try:
                key_id, encoded = line.split()
                secret = base64.urlsafe_b64decode(encoded)
                if len(secret) != KEY_BYTES:
                    raise ValueError
                secrets.append((int(key_id), secret))
            except ValueError:
                raise KeyUnavailable(f"{path}, line {number}: expected '<id> <32 bytes in base64>'") from None
        return cls(secrets, path)

    @classmethod
    def create(cls, path: Path) -> PersonalKeys:
        """A new key file at ``path`` (0600, refused if it exists) holding one random key."""
        keys = cls([(1, os.urandom(KEY_BYTES))], path)
        keys._write(exclusive=True)
        return keys

    @classmethod
    def load_or_create(cls, path: Path, create: bool) -> PersonalKeys:
        """:meth:`load`, or :meth:`create` when the file is missing and ``create`` (the embedded default)."""
        if create and not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            return cls.create(path)
        return cls.load(path)

    def _write(self, exclusive: bool = False) -> None:
        assert self.path is not None
        lines = ["# gridgov personal-data keys: the last line is current. Keep this file 0600, out of backups of "
                 "the database.\n"]
        lines += [f"{i} {base64.urlsafe_b64encode(s).decode()}\n" for i, s in self.secrets]
        temp = self.path.with_name(self.path.name + ".tmp")
        if exclusive and self.path.exists():
            raise InvalidInput(f"{self.path} exists already")
        temp.unlink(missing_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(lines)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, self.path)

    def with_new_key(self) -> PersonalKeys:
        """These keys plus a new random current one, written to the same file (old keys kept to open old values)."""
        new_id = max(i for i, _ in self.secrets) % 255 + 1
        if new_id in self._keys:
            raise InvalidInput("no free key id: finish the last rotation first ('gridgov keys rotate')")
        keys = PersonalKeys([*self.secrets, (new_id, os.urandom(KEY_BYTES))], self.path)
        if self.path is not None:
            keys._write()
        return keys

    def only_current(self) -> PersonalKeys:
        """These keys without the old ones (written to the file): after every value is sealed with the current."""
        keys = PersonalKeys([(self.current.id, dict(self.secrets)[self.current.id])], self.path)
        if self.path is not None:
            keys._write()
        return keys

    # -- values --------------------------------------------------------------------------------------------------
    def seal(self, field: str, value: str) -> bytes:
        """``value`` sealed under the current key (a fresh random nonce each time)."""
        nonce = os.urandom(NONCE_BYTES)
        return bytes([self.current.id]) + nonce + self.current.aead.encrypt(nonce, value.encode(), field.encode())

    def open(self, field: str, sealed: bytes) -> str:
        """The value of :meth:`seal`'s output; KeyUnavailable if its key is not in the file, or it fails
        authentication (changed, or sealed for another field)."""
        sealed = bytes(sealed)
        key = self._keys.get(sealed[0]) if sealed else None
        if key is None:
            raise KeyUnavailable(f"a value is sealed with key {sealed[:1].hex() or '?'}, which the personal-data key "
                                 "file does not hold")
        try:
            return key.aead.decrypt(sealed[1:1 + NONCE_BYTES], sealed[1 + NONCE_BYTES:], field.encode()).decode()
        except InvalidTag:
            raise KeyUnavailable("a sealed personal value fails authentication (changed, or another key)") from None

    def digest(self, field: str, value: str) -> bytes:
        """HMAC-SHA256 of ``field`` and ``value`` under the current key (32 bytes)."""
        return hmac.digest(self.current.mac, f"{field}\0{value}".encode(), hashlib.sha256)

    def digests(self, field: str, value: str) -> list[bytes]:
        """:meth:`digest` under every key of the file (for lookups while a rotation is under way)."""
        message = f"{field}\0{value}".encode()
        return [hmac.digest(k.mac, message, hashlib.sha256) for k in self._keys.values()]


def personal_keys(settings: Settings, *, create: bool | None = None) -> PersonalKeys:
    """The keys in ``settings.personal_key_path``. A missing file is created (0600, one random key) if ``create``;
    by default with the embedded cluster (no database URL), as the database is; with a configured server it must
    exist (KeyUnavailable)."""
    create = settings.database_url is None if create is None else create
    return PersonalKeys.load_or_create(settings.personal_key_path, create=create)
