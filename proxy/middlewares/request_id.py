"""Request ids: a client's well-formed X-Request-ID is kept, anything else is replaced by a new UUID."""

from __future__ import annotations

import os
import uuid
from collections import deque

from multidict import istr

HEADER = istr("X-Request-ID")  # case-folded once (multidict), read and written on every request

try:
    # asyncpg's UUID, what it returns for every uuid column: a uuid.UUID subclass, equal and hashed alike,
    # that is made from bytes, printed (X-Request-ID, the access line) and sent to PostgreSQL in C. A
    # request id made with uuid.uuid4() cost ~1.9 µs, each str() of it 0.5 µs and its COPY encoding
    # another ~0.5 µs; this one costs 0.9 µs in all. https://github.com/MagicStack/py-pgproto (uuid.pyx)
    from asyncpg.pgproto.pgproto import UUID as _FastUUID
except ImportError:  # another asyncpg layout: the standard class, slower and the same
    _FastUUID = None

# os.urandom read for 256 ids at a time, their version and variant bits set for all of them at once: one
# getrandom(2) system call per 256 requests, not per request (~0.7 µs each on a virtual machine). Each
# 16-byte piece is taken once: deque.popleft is atomic, so a thread that makes ids too never shares one,
# and a forked child empties the deque, so it never makes its parent's ids
# (https://docs.python.org/3/library/os.html#os.register_at_fork).
_IDS_PER_READ = 256
_pieces: deque[bytes] = deque()
os.register_at_fork(after_in_child=_pieces.clear)


def _version_4_bytes() -> bytes:
    try:
        return _pieces.popleft()
    except IndexError:
        block = bytearray(os.urandom(16 * _IDS_PER_READ))
        # RFC 9562 §5.4: a version-4 UUID is 122 random bits, the version (0100) in the high half of
        # octet 6 and the variant (10) in the top bits of octet 8.
        block[6::16] = bytes(octet & 0x0F | 0x40 for octet in block[6::16])
        block[8::16] = bytes(octet & 0x3F | 0x80 for octet in block[8::16])
        _pieces.extend(bytes(block[start : start + 16]) for start in range(16, len(block), 16))
        return bytes(block[:16])


def new_request_id() -> uuid.UUID:
    """A random (version 4) UUID, as uuid.uuid4() makes, from the same source (os.urandom)."""
    if _FastUUID is None:
        return uuid.uuid4()
    return _FastUUID(_version_4_bytes())


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
