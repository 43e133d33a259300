"""Validation of the editable fields of a key, shared by the admin API and the CLI."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from proxy.keys.format import PRIORITIES, ROLES
from proxy.settings import MAX_BURST, MAX_CONCURRENT, MAX_RATE_LIMIT, MAX_TOKENS_PER_DAY
from proxy.values.digits import is_ascii_digits
from proxy.values.text import MAX_MODEL
from proxy.values.timestamps import parse_timestamp

MAX_NAME_LENGTH = 200
MAX_MODEL_NAME_LENGTH = MAX_MODEL  # what a request's model is stored cut to: a longer entry could never match
MAX_MODELS = 1000  # allow-list entries per key
MAX_WEIGHT = 1_000_000  # a key's fair-queue share, relative to others' (sql/008 checks the same)
MAX_QUEUED = 10_000  # requests of one key waiting at once


def _printable(value: str) -> bool:
    """No control characters (PostgreSQL refuses a NUL; others garble tables and logs) and no lone
    surrogates (valid as JSON escapes, not encodable as UTF-8)."""
    return value.isprintable()


def parse_name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH or not _printable(value):
        raise ValueError(f"name must be a non-empty string of printable characters, at most {MAX_NAME_LENGTH}")
    return value.strip()


def parse_role(value: Any) -> str:
    if value not in ROLES:
        raise ValueError(f"role must be one of: {', '.join(ROLES)}")
    return value


def parse_positive_int(field: str, value: Any, maximum: int = MAX_RATE_LIMIT) -> int:
    # bool is an int in Python; `true` is not a rate.
    if isinstance(value, str) and is_ascii_digits(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= maximum:
        raise ValueError(f"{field} must be a whole number from 1 to {maximum}")
    return value


def parse_weight(value: Any) -> float:
    """A positive number: the key's share of the GPUs while keys wait (1 = an equal share)."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= MAX_WEIGHT:
        raise ValueError(f"weight must be a number greater than 0 and at most {MAX_WEIGHT}")
    if not math.isfinite(value):
        raise ValueError(f"weight must be a number greater than 0 and at most {MAX_WEIGHT}")
    return float(value)


def parse_max_queued(value: Any) -> int:
    """Requests of the key that may wait for a node at once; 0 = refuse at once when the nodes are busy."""
    if isinstance(value, str) and is_ascii_digits(value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_QUEUED:
        raise ValueError(f"max_queued must be a whole number from 0 to {MAX_QUEUED}")
    return value


def parse_priority(value: Any) -> str:
    if value not in PRIORITIES:
        raise ValueError(f"priority must be one of: {', '.join(PRIORITIES)}")
    return value


def parse_optional_limit(field: str, value: Any, maximum: int) -> int | None:
    """A positive whole number, or null for "no such limit" (burst: the default rule)."""
    return None if value is None else parse_positive_int(field, value, maximum)


def parse_models(value: Any) -> list[str] | None:
    """None (every model) or a list of names."""
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) > MAX_MODELS
        or not all(
            isinstance(m, str) and m.strip() and len(m) <= MAX_MODEL_NAME_LENGTH and _printable(m) for m in value
        )
    ):
        raise ValueError(
            f"models must be null or a list of at most {MAX_MODELS} model names of printable "
            f"characters, each at most {MAX_MODEL_NAME_LENGTH}"
        )
    return sorted({m.strip() for m in value})


def parse_models_list(value: str) -> list[str] | None:
    """The CLI's form: `a,b,c`."""
    return parse_models([part.strip() for part in value.split(",") if part.strip()])


def parse_expires_at(value: Any) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError("expires_at must be an ISO 8601 timestamp or null")
    return parse_timestamp("expires_at", value)


def parse_is_active(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("is_active must be true or false")
    return value


PARSERS = {
    "name": parse_name,
    "role": parse_role,
    "rate_limit": lambda v: parse_positive_int("rate_limit", v),
    "models": parse_models,
    "expires_at": parse_expires_at,
    "is_active": parse_is_active,
    "burst": lambda v: parse_optional_limit("burst", v, MAX_BURST),
    "max_concurrent": lambda v: parse_optional_limit("max_concurrent", v, MAX_CONCURRENT),
    "tokens_per_day": lambda v: parse_optional_limit("tokens_per_day", v, MAX_TOKENS_PER_DAY),
    "weight": parse_weight,
    "max_queued": parse_max_queued,
    "priority": parse_priority,
}
LIMIT_FIELDS = ("burst", "max_concurrent", "tokens_per_day")
QUEUE_FIELDS = ("weight", "max_queued", "priority")
CREATE_FIELDS = ("name", "role", "rate_limit", "models", "expires_at", *LIMIT_FIELDS, *QUEUE_FIELDS)


def parse_key_fields(data: dict[str, Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """Validate the given fields; unknown fields are refused, so a typo is never silently ignored."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}; allowed: {', '.join(allowed)}")
    return {field: PARSERS[field](value) for field, value in data.items()}
