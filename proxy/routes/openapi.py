"""The OpenAPI 3.1 document of the gateway's own routes (Ollama's pass-through is Ollama's API).

tests/routes/test_openapi.py walks the router and fails on any gateway route missing here, or documented
here but not routed; tests/routes/test_openapi_conformance.py runs schemathesis against a live gateway.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from proxy.routes.logs import MAX_LIMIT
from proxy.routes.openapi_schemas import SCHEMAS, ref

_JSON = "application/json"
_PUBLIC: list[dict[str, list[str]]] = []  # `security: []`: no credentials


def _body(schema: dict[str, Any], media: str = _JSON) -> dict[str, Any]:
    return {"content": {media: {"schema": schema}}}


def _ok(description: str, schema: dict[str, Any], media: str = _JSON, status: str = "200") -> dict[str, Any]:
    return {status: {"description": description, **_body(schema, media)}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(status): {"$ref": f"#/components/responses/{_RESPONSES_BY_STATUS[status]}"} for status in statuses}


_RESPONSES_BY_STATUS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    413: "TooLarge",
    429: "TooManyRequests",
    502: "UpstreamFailed",
    503: "Unavailable",
    504: "UpstreamTimeout",
}
_KEYED = (401, 429, 503)  # any keyed route: bad credential, over a limit, key store down
_RESPONSES = {
    "BadRequest": "Malformed body or query parameter; the message says which",
    "Unauthorized": "Missing, unknown, revoked or expired key or token (one body for all)",
    "Forbidden": "A valid key without the right (e.g. not an admin key)",
    "NotFound": "No such resource",
    "Conflict": "The change contradicts the key's state: a revoked key cannot be reactivated",
    "TooLarge": "Request body over MAX_JSON_BODY_SIZE (JSON) or MAX_BODY_SIZE (multipart upload)",
    "TooManyRequests": "Over the key's rate, concurrency or daily token limit; see Retry-After",
    "UpstreamFailed": "Ollama is unreachable or answered something unreadable",
    "Unavailable": "The key store is unreachable and the key is not cached; retry after Retry-After",
    "UpstreamTimeout": "Ollama did not answer in time",
}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


_MOMENT = {
    "anyOf": [{"type": "string", "format": "date"}, {"type": "string", "format": "date-time"}],
    "examples": ["2025-06-01", "2025-06-01T12:00:00Z"],
}
_KEY_ID_PATH = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}
_ADMIN = "Admin key only."
_ASSET = {"name": "asset", "in": "path", "required": True, "schema": {"type": "string"}}
_FILE = {
    "200": {
        "description": "The file",
        "content": {
            "text/javascript": {"schema": {"type": "string"}},
            "text/css": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}

PATHS: dict[str, Any] = {
    "/health": {
        "get": {
            "summary": "Liveness",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": _ok("The process serves", ref("Health")),
        }
    },
    "/ready": {
        "get": {
            "summary": "Readiness: Ollama answers, and the database answers or the journal is writable",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": {
                **_ok("Ready to serve", ref("Ready")),
                **_ok("Not ready; `checks` says why", ref("Ready"), status="503"),
            },
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics",
            "tags": ["operations"],
            "description": "An admin key, a token of one, or `Authorization: Bearer <METRICS_TOKEN>`.",
            "responses": {
                "200": {
                    "description": "Prometheus text format (OpenMetrics if asked for in Accept)",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/openmetrics-text": {"schema": {"type": "string"}},
                    },
                },
                **_errors(401, 403, 503),
            },
        }
    },
    "/openapi.json": {
        "get": {
            "summary": "This document",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": _ok("OpenAPI 3.1", {"type": "object"}),
        }
    },
    "/docs": {
        "get": {
            "summary": "Interactive documentation of this API (served offline)",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": _ok("An HTML page", {"type": "string"}, "text/html"),
        }
    },
    "/docs/{asset}": {
        "get": {
            "summary": "The documentation page's scripts and styles",
            "tags": ["operations"],
            "security": _PUBLIC,
            "parameters": [
                {
                    "name": "asset",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "enum": ["swagger-ui.css", "swagger-ui-bundle.js", "init.js"]},
                }
            ],
            "responses": {
                "200": {
                    "description": "The file",
                    "content": {
                        "text/css": {"schema": {"type": "string"}},
                        "text/javascript": {"schema": {"type": "string"}},
                    },
                },
                **_errors(404),
            },
        }
    },
    "/redoc": {
        "get": {
            "summary": "This document rendered by ReDoc (served offline)",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": _ok("An HTML page", {"type": "string"}, "text/html"),
        }
    },
    "/redoc/{asset}": {
        "get": {
            "summary": "ReDoc's script and its licences",
            "tags": ["operations"],
            "security": _PUBLIC,
            "parameters": [_ASSET],
            "responses": {**_FILE, **_errors(404)},
        }
    },
    "/ui": {
        "get": {
            "summary": "Redirects to /ui/",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": {"301": {"description": "To `ui/`, relative, so a proxy's path prefix is kept"}},
        }
    },
    "/ui/": {
        "get": {
            "summary": "The web console (signs in with a key, then calls this API with a short-lived token)",
            "tags": ["operations"],
            "security": _PUBLIC,
            "responses": _ok("An HTML page", {"type": "string"}, "text/html"),
        }
    },
    "/ui/{asset}": {
        "get": {
            "summary": "The console's scripts, styles and vendored chart library",
            "tags": ["operations"],
            "security": _PUBLIC,
            "parameters": [_ASSET],
            "responses": {**_FILE, **_errors(404)},
        }
    },
    "/api/auth/token": {
        "post": {
            "summary": "Exchange the key for a short-lived bearer token",
            "tags": ["auth"],
            "description": "Valid ACCESS_TOKEN_EXPIRE_MINUTES (never past the key's own expiry), accepted wherever "
            "the key is. Refused once the key is revoked, deactivated, expired or changes role. "
            "A token cannot be exchanged for another (403).",
            "responses": {**_ok("The token", ref("Token")), **_errors(403, *_KEYED)},
        }
    },
    "/api/auth/key": {
        "get": {
            "summary": "The key behind this key or token: role, limits, models, expiry",
            "tags": ["auth"],
            "description": "Any key; never the key itself. The console shows it as the signed-in key.",
            "responses": {**_ok("The key", ref("Key")), **_errors(*_KEYED)},
        }
    },
    "/api/models": {
        "get": {
            "summary": "The models this key may use",
            "tags": ["usage"],
            "responses": {**_ok("Ollama's model list, filtered", ref("ModelList")), **_errors(*_KEYED, 502, 504)},
        }
    },
    "/api/backends": {
        "get": {
            "summary": "The Ollama nodes: health, models pulled and loaded, requests under way",
            "tags": ["usage"],
            "description": _ADMIN + " See docs/backends.md.",
            "responses": {**_ok("The nodes", ref("Backends")), **_errors(403, *_KEYED)},
        }
    },
    "/api/stats": {
        "get": {
            "summary": "Usage totals, per model, per node and per day",
            "tags": ["usage"],
            "description": "From the daily rollups. A user key sees its own usage; an admin key every key's, or one "
            "key's with `key_id`. `since`/`until` select whole UTC days (default: the last 30).",
            "parameters": [
                _query(
                    "key_id", {"type": "string", "format": "uuid"}, "one key (admin; a user key may name only itself)"
                ),
                _query("since", _MOMENT, "first UTC day, ISO 8601 date or timestamp"),
                _query("until", _MOMENT, "last UTC day, inclusive"),
            ],
            "responses": {**_ok("Usage", ref("Stats")), **_errors(400, 403, *_KEYED)},
        }
    },
    "/api/usage": {
        "get": {
            "summary": "Usage over time, per hour or per day, with breakdowns by key, model and node",
            "tags": ["usage"],
            "description": "From the hourly and daily rollups, never raw log rows. A user key sees its own usage; "
            "an admin key every key's, or one key's with `key_id`. The range is widened to whole steps; "
            "default: the last 24 hours, by the hour. `split` picks the dimension of the stacked series.",
            "parameters": [
                _query(
                    "key_id", {"type": "string", "format": "uuid"}, "one key (admin; a user key may name only itself)"
                ),
                _query("since", _MOMENT, "start of the range (default: 24 hours before `until`)"),
                _query("until", _MOMENT, "end of the range, exclusive (default: now)"),
                _query(
                    "step",
                    {"type": "string", "enum": ["hour", "day"]},
                    "period of each point (default: hour up to 2 days, day beyond; hour covers at most 32 days)",
                ),
                _query("split", {"type": "string", "enum": ["key", "model", "node"]}, "default: model"),
            ],
            "responses": {**_ok("Usage per period", ref("UsageSeries")), **_errors(400, 403, *_KEYED)},
        }
    },
    "/api/logs": {
        "get": {
            "summary": "Request log rows, newest first",
            "tags": ["usage"],
            "description": _ADMIN + " Paged by an opaque cursor: pass `next_cursor` back as `cursor`.",
            "parameters": [
                _query("key_id", {"type": "string", "format": "uuid"}, "only this key's requests"),
                _query("model", {"type": "string"}, "only requests naming this model"),
                _query("status", {"type": "integer", "minimum": 100, "maximum": 599}, "only this status"),
                _query("since", _MOMENT, "from this time (inclusive)"),
                _query("until", _MOMENT, "to this time (exclusive; a bare date includes that day)"),
                _query("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}, "rows per page"),
                _query("cursor", {"type": "string"}, "`next_cursor` of the previous page"),
            ],
            "responses": {**_ok("A page of rows", ref("LogPage")), **_errors(400, 403, *_KEYED)},
        }
    },
    "/api/keys": {
        "get": {
            "summary": "List keys (never a key itself)",
            "tags": ["keys"],
            "description": _ADMIN,
            "responses": {**_ok("Every key", ref("KeyList")), **_errors(403, *_KEYED)},
        },
        "post": {
            "summary": "Create a key; the key itself is in this answer only",
            "tags": ["keys"],
            "description": _ADMIN + " Unset limits take the DEFAULT_* settings; null means no such limit.",
            "requestBody": {"required": True, **_body(ref("KeyCreate"))},
            "responses": {**_ok("The new key", ref("NewKey"), status="201"), **_errors(400, 403, 413, *_KEYED)},
        },
    },
    "/api/keys/{key_id}": {
        "parameters": [_KEY_ID_PATH],
        "get": {
            "summary": "Show a key",
            "tags": ["keys"],
            "description": _ADMIN,
            "responses": {**_ok("The key", ref("Key")), **_errors(403, 404, *_KEYED)},
        },
        "patch": {
            "summary": "Change a key's fields",
            "tags": ["keys"],
            "description": _ADMIN,
            "requestBody": {"required": True, **_body(ref("KeyUpdate"))},
            "responses": {**_ok("The key as changed", ref("Key")), **_errors(400, 403, 404, 409, 413, *_KEYED)},
        },
        "delete": {
            "summary": "Revoke a key (its record and usage history stay)",
            "tags": ["keys"],
            "description": _ADMIN,
            "responses": {**_ok("The revoked key", ref("Key")), **_errors(403, 404, *_KEYED)},
        },
    },
}


def _version() -> str:
    try:
        return metadata.version("ollama-gateway")
    except metadata.PackageNotFoundError:
        return "0"


def build_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ollama-gateway",
            "version": _version(),
            "description": "The gateway's own API. Every Ollama route (native `/api/*`, OpenAI-compatible "
            "`/v1/*`) is also served, relayed unchanged, with the same credentials; see Ollama's "
            "API documentation for those.",
        },
        "security": [{"bearer": []}, {"apiKey": []}],
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key (`olg_…`) or a token from POST /api/auth/token",
                },
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            },
            "schemas": SCHEMAS,
            "responses": {
                name: {
                    "description": description,
                    **_body(ref("Error")),
                    **(
                        {"headers": {"Retry-After": {"schema": {"type": "integer"}}}}
                        if name in ("TooManyRequests", "Unavailable")
                        else {}
                    ),
                }
                for name, description in _RESPONSES.items()
            },
        },
        "tags": [{"name": "keys"}, {"name": "usage"}, {"name": "auth"}, {"name": "operations"}],
    }
