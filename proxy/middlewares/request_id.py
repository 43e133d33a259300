"""Request ids: a client's well-formed X-Request-ID is kept, anything else is replaced by a new UUID."""

from __future__ import annotations

import os
import uuid

HEADER = "X-Request-ID"

try:
    # asyncpg's UUID, what it returns for every uuid column: a uuid.UUID subclass, equal and hashed alike,
    # that is made from bytes, printed (X-Request-ID, the access line) and sent to PostgreSQL in C. A
    # request id made with uuid.uuid4() cost ~1.9 µs, each str() of it 0.5 µs and its COPY encoding
    # another ~0.5 µs; this one costs 0.9 µs in all. https://github.com/MagicStack/py-pgproto (uuid.pyx)
    from asyncpg.pgproto.pgproto import UUID as _FastUUID
except ImportError:  # another asyncpg layout: the standard class, slower and the same
    _FastUUID = None

# RFC 9562 §5.4: a version-4 UUID is 122 random bits, the version (0100) in bits 48-51 and the variant
# (10) in bits 64-65, counted from the most significant.
_NOT_RANDOM = (0xF000 << 64) | (0xC000 << 48)
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> uuid.UUID:
    """A random (version 4) UUID, as uuid.uuid4() makes, from the same source (os.urandom)."""
    if _FastUUID is None:
        return uuid.uuid4()
    bits = int.from_bytes(os.urandom(16), "big") & ~_NOT_RANDOM | _VERSION_4
    return _FastUUID(bits.to_bytes(16, "big"))


def request_id_from(header_value: str | None) -> uuid.UUID:
    # Only a UUID is kept: the id is the request_log primary key and lands in log lines,
    # so free text from a client must not reach either.
    # ASCII first: the header may hold any byte, and uuid.UUID reads non-ASCII digits too.
    if header_value and len(header_value) <= 64 and header_value.isascii():
        try:
            return uuid.UUID(header_value)
        except ValueError:
            pass
    return new_request_id()
