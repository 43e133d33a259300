"""JSON Schemas (OpenAPI 3.1 = JSON Schema 2020-12) of the gateway's own request and response bodies.

Written from what the handlers do (routes/*.py, KeyRecord.to_json, request_log.stats.summarize,
request_log.query.row_to_json); tests/routes/test_openapi_conformance.py holds them to it.
"""

from __future__ import annotations

from typing import Any

from proxy.keys.fields import (
    MAX_BURST,
    MAX_CONCURRENT,
    MAX_MODEL_NAME_LENGTH,
    MAX_MODELS,
    MAX_NAME_LENGTH,
    MAX_QUEUED,
    MAX_RATE_LIMIT,
    MAX_TOKENS_PER_DAY,
    MAX_WEIGHT,
)
from proxy.keys.format import PRIORITIES, ROLES


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


def _object(
    properties: dict[str, Any], *, required: tuple[str, ...] | None = None, closed: bool = False
) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "required": list(properties if required is None else required),
    }
    if closed:
        schema["additionalProperties"] = False
    return schema


_INT = {"type": "integer"}
_COUNT = {"type": "integer", "minimum": 0}
_TEXT = {"type": "string"}
_UUID = {"type": "string", "format": "uuid"}
_TIME = {"type": "string", "format": "date-time"}
_MS = nullable({"type": "number"})


def _limit(maximum: int, meaning: str) -> dict[str, Any]:
    return {**nullable({"type": "integer", "minimum": 1, "maximum": maximum}), "description": meaning}


_KEY_FIELDS = {
    "name": {"type": "string", "minLength": 1, "maxLength": MAX_NAME_LENGTH, "pattern": r"\S"},
    "role": {"type": "string", "enum": list(ROLES)},
    "rate_limit": {"type": "integer", "minimum": 1, "maximum": MAX_RATE_LIMIT, "description": "requests per hour"},
    "models": {
        **nullable(
            {
                "type": "array",
                "maxItems": MAX_MODELS,
                "items": {"type": "string", "maxLength": MAX_MODEL_NAME_LENGTH, "pattern": r"\S"},
            }
        ),
        "description": "allow-list (`llama3` admits `llama3:latest`, `qwen3:*` every tag); null = every model",
    },
    "expires_at": nullable(_TIME),
    "burst": _limit(MAX_BURST, "requests at once; null = a minute of rate_limit"),
    "max_concurrent": _limit(MAX_CONCURRENT, "requests in flight at once; null = no limit"),
    "tokens_per_day": _limit(MAX_TOKENS_PER_DAY, "prompt + completion tokens per UTC day; null = no quota"),
    "weight": {
        "type": "number",
        "exclusiveMinimum": 0,
        "maximum": MAX_WEIGHT,
        "description": "share of the nodes while keys wait for them, relative to other keys (default 1)",
    },
    "max_queued": {
        "type": "integer",
        "minimum": 0,
        "maximum": MAX_QUEUED,
        "description": "requests that may wait for a node at once (default 32); beyond, 429",
    },
    "priority": {
        "type": "string",
        "enum": list(PRIORITIES),
        "description": "interactive (default) is always served before batch when requests wait",
    },
}

_USAGE = {
    "requests": _COUNT,
    "prompt_tokens": _COUNT,
    "completion_tokens": _COUNT,
    "total_tokens": _COUNT,
    "errors": _COUNT,
    "avg_response_time_ms": _MS,
    "p50_response_time_ms": _MS,
    "p95_response_time_ms": _MS,
    "queued": {**_COUNT, "description": "requests that waited for a free node slot"},
    "p50_queue_ms": _MS,
    "p95_queue_ms": _MS,
}

SCHEMAS: dict[str, Any] = {
    "Error": {**_object({"error": _TEXT}), "description": 'Native error shape, `{"error": "…"}`'},
    "Key": _object(
        {
            "id": _UUID,
            "prefix": {**_TEXT, "description": "the key's first characters, for display"},
            "name": _TEXT,
            "role": _KEY_FIELDS["role"],
            "rate_limit": _INT,
            "burst": nullable(_INT),
            "max_concurrent": nullable(_INT),
            "tokens_per_day": nullable(_INT),
            "weight": {"type": "number"},
            "max_queued": _INT,
            "priority": _KEY_FIELDS["priority"],
            "models": nullable({"type": "array", "items": _TEXT}),
            "is_active": {"type": "boolean"},
            "expires_at": nullable(_TIME),
            "created_at": _TIME,
            "last_used_at": nullable(_TIME),
        }
    ),
    "NewKey": {"allOf": [ref("Key"), _object({"key": {**_TEXT, "description": "the key itself, shown this once"}})]},
    "KeyList": _object({"keys": {"type": "array", "items": ref("Key")}}),
    "KeyCreate": _object(_KEY_FIELDS, required=("name",), closed=True),
    "KeyUpdate": _object({**_KEY_FIELDS, "is_active": {"type": "boolean"}}, required=(), closed=True),
    "Usage": _object(_USAGE),
    "Stats": _object(
        {
            "key_id": nullable(_UUID),
            "since": {"type": "string", "format": "date"},
            "until": {"type": "string", "format": "date"},
            "totals": ref("Usage"),
            "by_model": {"type": "array", "items": {"allOf": [ref("Usage"), _object({"model": nullable(_TEXT)})]}},
            "by_node": {
                "type": "array",
                "items": {"allOf": [ref("Usage"), _object({"node": nullable(_TEXT)})]},
                "description": "per Ollama node; null: requests no single node served",
            },
            "by_day": {
                "type": "array",
                "items": {"allOf": [ref("Usage"), _object({"day": {"type": "string", "format": "date"}})]},
            },
        }
    ),
    "UsageFigures": _object(
        {
            **_USAGE,
            "p50_ttfb_ms": {**_MS, "description": "time to the first byte from Ollama"},
            "p95_ttfb_ms": _MS,
        }
    ),
    "UsageSeries": _object(
        {
            "since": {**_TIME, "description": "the first period's start (the range, aligned to the step)"},
            "until": {**_TIME, "description": "the end of the last period (exclusive)"},
            "step": {"type": "string", "enum": ["hour", "day"]},
            "key_id": nullable(_UUID),
            "starts": {"type": "array", "items": _TIME, "description": "each period's start, in order"},
            "series": {
                "type": "object",
                "description": "one value per period, in the order of `starts`; a percentile is null where "
                "nothing was measured",
                "additionalProperties": {"type": "array", "items": nullable({"type": "number"})},
            },
            "split": _object(
                {
                    "by": {"type": "string", "enum": ["key", "model", "node"]},
                    "groups": {
                        "type": "array",
                        "items": _object(
                            {
                                "name": nullable(_TEXT),
                                "requests": {"type": "array", "items": _COUNT},
                                "total_tokens": {"type": "array", "items": _COUNT},
                            }
                        ),
                    },
                }
            ),
            "totals": ref("UsageFigures"),
            "by_key": {
                "type": "array",
                "items": {"allOf": [ref("UsageFigures"), _object({"key_id": nullable(_UUID)})]},
            },
            "by_model": {
                "type": "array",
                "items": {"allOf": [ref("UsageFigures"), _object({"model": nullable(_TEXT)})]},
            },
            "by_node": {"type": "array", "items": {"allOf": [ref("UsageFigures"), _object({"node": nullable(_TEXT)})]}},
        }
    ),
    "LogEntry": _object(
        {
            "id": {**_UUID, "description": "the request id (X-Request-ID)"},
            "created_at": _TIME,
            "api_key_id": nullable(_UUID),
            "endpoint": _TEXT,
            "method": _TEXT,
            "model": nullable(_TEXT),
            "status_code": _INT,
            "prompt_tokens": nullable(_INT),
            "completion_tokens": nullable(_INT),
            "tokens_used": nullable(_INT),
            "usage_estimated": {"type": "boolean"},
            "response_time_ms": _MS,
            "ttfb_ms": _MS,
            "bytes_in": nullable(_INT),
            "bytes_out": nullable(_INT),
            "client_ip": nullable(_TEXT),
            "error": nullable(_TEXT),
            "node": {**nullable(_TEXT), "description": "the Ollama node that served it"},
            "queue_ms": {**_MS, "description": "time it waited for a free node slot; null: it never waited"},
        }
    ),
    "LogPage": _object(
        {
            "logs": {"type": "array", "items": ref("LogEntry")},
            "next_cursor": {**nullable(_TEXT), "description": "pass as `cursor` for the next page"},
        }
    ),
    "ModelList": {
        **_object(
            {
                "models": {
                    "type": "array",
                    "items": {**_object({"name": _TEXT}, required=("name",)), "description": "as Ollama's /api/tags"},
                }
            }
        ),
        "description": "Ollama's /api/tags answer, less the models the key may not use",
    },
    "Backends": _object(
        {
            "polled": {"type": "boolean", "description": "false with one node: it is not polled"},
            "backends": {
                "type": "array",
                "items": _object(
                    {
                        "name": _TEXT,
                        "url": {**_TEXT, "description": "without a password"},
                        "status": {"type": "string", "enum": ["up", "down", "circuit open"]},
                        "healthy": {"type": "boolean"},
                        "reason": nullable(_TEXT),
                        "capacity": _COUNT,
                        "weight": {"type": "number"},
                        "labels": {"type": "array", "items": _TEXT},
                        "in_flight": _COUNT,
                        "requests": _COUNT,
                        "failures": {**_COUNT, "description": "consecutive, towards the circuit breaker"},
                        "failures_total": _COUNT,
                        "models": {"type": "array", "items": _TEXT},
                        "loaded": {"type": "array", "items": _TEXT},
                        "last_probe": nullable(_TIME),
                        "capacity_enforced": {
                            "type": "boolean",
                            "description": "true for nodes of an OLLAMA_BACKENDS file: the rest wait in the gateway",
                        },
                        "slots_in_use": {**nullable(_INT), "description": "by this process's requests"},
                        "slots_held": {**nullable(_INT), "description": "leased by this process"},
                        "queued": {**_COUNT, "description": "requests waiting here that may run on this node"},
                        "in_flight_all": {
                            **nullable(_INT),
                            "description": "under way over every gateway process (others as of their last "
                            "heartbeat, every 2 s); null when the database cannot say",
                        },
                        "queued_all": {**nullable(_INT), "description": "waiting over every gateway process"},
                    }
                ),
            },
            "processes": {
                **nullable(_INT),
                "description": "live gateway processes the *_all figures add up; null when the database cannot say",
            },
            "queue": _object(
                {
                    "timeout_seconds": {"type": "number", "description": "QUEUE_TIMEOUT"},
                    "waiting": _COUNT,
                    "by_model": {
                        "type": "array",
                        "items": _object({"model": _TEXT, "waiting": _COUNT, "longest_wait_ms": {"type": "number"}}),
                    },
                    "by_key": {
                        "type": "array",
                        "items": _object({"key_id": _TEXT, "waiting": _COUNT, "longest_wait_ms": {"type": "number"}}),
                    },
                }
            ),
        }
    ),
    "Token": _object(
        {
            "access_token": {**_TEXT, "description": "`olt_…`; send as `Authorization: Bearer`"},
            "token_type": {"type": "string", "enum": ["bearer"]},
            "expires_in": {**_COUNT, "description": "seconds"},
        }
    ),
    "Health": _object({"status": {"type": "string", "enum": ["ok"]}}),
    "Ready": _object(
        {
            "status": {"type": "string", "enum": ["ready", "unavailable"]},
            "checks": {
                "type": "object",
                "additionalProperties": _TEXT,
                "description": "database, ollama, and journal when the database is down: `ok` or the reason",
            },
        }
    ),
}
