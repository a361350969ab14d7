"""Encrypted files, streamed: AES-256-GCM in chunks, for backups holding personal data.

Format (all integers big-endian)::

    header  MAGIC (16 bytes) | salt (16) | scrypt log2 N (1) | r (1) | p (1) | nonce prefix (8) | chunk size (4)
    chunk   length of the ciphertext (4) | ciphertext with its 16-byte tag

Chunk ``i`` (from 0) is sealed with the nonce ``prefix || i`` (4 bytes) and the associated data
``header || i || last`` (``last`` one byte, 1 for the final chunk, which may be empty): a chunk changed, moved,
dropped or added, a header edited or a file cut short all fail authentication. The key is scrypt(secret, salt)
(N=2^15, r=8, p=1: about 0.1 s and 32 MiB once per file), so a passphrase and a key file's bytes both serve as
the secret. Memory use is one chunk (1 MiB), whatever the size of the file.

:func:`open_sealed` decrypts a whole file to a destination and only returns once every chunk and the end of the
file are authenticated; a wrong secret or a changed file is :class:`InvalidInput` saying which.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from spatial.errors import InvalidInput

MAGIC = b"GRIDGOV-SEALED\x00\x01"
CHUNK_BYTES = 1 << 20
_HEADER = struct.Struct(">16s16sBBB8sI")
_LENGTH = struct.Struct(">I")
_SCRYPT = (15, 8, 1)
_MAX_SCRYPT_LOG2_N = 20  # a forged header must not make the reader spend gigabytes
MIN_SECRET_BYTES = 12


def is_sealed(path: Path) -> bool:
    """Whether the file at ``path`` starts like a sealed file."""
    with open(path, "rb") as f:
        return f.read(len(MAGIC)) == MAGIC


def _key(secret: bytes, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=1 << log2_n, r=r, p=p).derive(secret)


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise InvalidInput(f"the backup key or passphrase must be at least {MIN_SECRET_BYTES} bytes long")


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">I?", index, last)


class Sealer:
    """Write a sealed file: :meth:`write` plaintext in any pieces, then :meth:`close` (which seals the last chunk).

    ``out`` is an open binary file (the caller chooses its mode, e.g. 0600)."""

    def __init__(self, out: BinaryIO, secret: bytes, chunk_bytes: int = CHUNK_BYTES) -> None:
        _check_secret(secret)
        self.out, self.chunk_bytes = out, chunk_bytes
        salt, self.prefix = os.urandom(16), os.urandom(8)
        self.header = _HEADER.pack(MAGIC, salt, *_SCRYPT, self.prefix, chunk_bytes)
        self.aead = AESGCM(_key(secret, salt, *_SCRYPT))
        self.buffer = bytearray()
        self.index = 0
        out.write(self.header)

    def _seal(self, data: bytes, last: bool) -> None:
        sealed = self.aead.encrypt(_nonce(self.prefix, self.index), data, _aad(self.header, self.index, last))
        self.out.write(_LENGTH.pack(len(sealed)) + sealed)
        self.index += 1

    def write(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) > self.chunk_bytes:  # keep at least one byte back: the last chunk is sealed as such
            self._seal(bytes(self.buffer[:self.chunk_bytes]), False)
            del self.buffer[:self.chunk_bytes]

    def close(self) -> None:
        self._seal(bytes(self.buffer), True)
        self.buffer.clear()


def _chunks(src: BinaryIO, secret: bytes, name: str) -> Iterator[bytes]:
    header = src.read(_HEADER.size)
    if len(header) < _HEADER.size or not header.startswith(MAGIC):
        raise InvalidInput(f"{name} is not an encrypted gridgov backup")
    _, salt, log2_n, r, p, prefix, chunk_bytes = _HEADER.unpack(header)
    if not (10 <= log2_n <= _MAX_SCRYPT_LOG2_N and 1 <= r <= 32 and 1 <= p <= 16 and 1 <= chunk_bytes <= 1 << 26):
        raise InvalidInput(f"{name} has a damaged header and cannot be decrypted")
    aead = AESGCM(_key(secret, salt, log2_n, r, p))
    index = 0
    while True:
        raw_length = src.read(_LENGTH.size)
        if len(raw_length) < _LENGTH.size:
            raise InvalidInput(f"{name} is truncated (it ends before its last chunk) and cannot be restored")
        (length,) = _LENGTH.unpack(raw_length)
        if length > chunk_bytes + 16:
            raise InvalidInput(f"{name} is damaged (a chunk of {length} bytes) and cannot be restored")
        sealed = src.read(length)
        for last in (False, True):
            try:
                data = aead.decrypt(_nonce(prefix, index), sealed, _aad(header, index, last))
                break
            except InvalidTag:
                continue
        else:
            if index == 0:
                raise InvalidInput(f"{name} cannot be decrypted: wrong backup key or passphrase, or the file was "
                                   "changed")
            raise InvalidInput(f"{name} was changed or damaged (chunk {index} fails authentication); nothing restored")
        yield data
        index += 1
        if last:
            if src.read(1):
                raise InvalidInput(f"{name} has data after its last chunk (changed or damaged); nothing restored")
            return


def open_sealed(path: Path, secret: bytes, out: BinaryIO) -> int:
    """Decrypt the sealed file at ``path`` into ``out``; the plaintext bytes written. InvalidInput for a wrong
    secret or a changed, truncated or extended file (then ``out`` holds an unauthenticated prefix: discard it)."""
    written = 0
    with open(path, "rb") as src:
        for data in _chunks(src, secret, str(path)):
            out.write(data)
            written += len(data)
    return written
