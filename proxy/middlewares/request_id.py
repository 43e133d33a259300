"""Request ids: a client's well-formed X-Request-ID is kept, anything else is replaced by a UUID."""

from __future__ import annotations

import uuid

HEADER = "X-Request-ID"


def request_id_from(header_value: str | None) -> uuid.UUID:
    # Only a UUID is kept: the id is the request_log primary key and lands in log lines,
    # so free text from a client must not reach either.
    # ASCII first: the header may hold any byte, and uuid.UUID reads non-ASCII digits too.
    if header_value and len(header_value) <= 64 and header_value.isascii():
        try:
            return uuid.UUID(header_value)
        except ValueError:
            pass
    return uuid.uuid4()
