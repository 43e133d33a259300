"""Admin API for keys: create (the plaintext is returned this once), list, show, edit, revoke."""

from __future__ import annotations

from uuid import UUID

from aiohttp import web

from proxy.errors import GatewayError
from proxy.keys.cache import KEY_CACHE
from proxy.keys.fields import CREATE_FIELDS, PARSERS, parse_key_fields
from proxy.keys.format import KeyRecord
from proxy.keys.store import KEY_STORE, KeyRevoked
from proxy.ledger.context import LIMITER
from proxy.passthrough.body import read_json_object
from proxy.passthrough.expect_continue import defer_continue
from proxy.routes.access import require_admin
from proxy.state import SETTINGS


def _key_id(request: web.Request) -> UUID:
    try:
        return UUID(request.match_info["key_id"])
    except ValueError:
        raise GatewayError(404, "no such key") from None


def _found(record: KeyRecord | None) -> KeyRecord:
    if record is None:
        raise GatewayError(404, "no such key")
    return record


def _fields(data: dict, allowed: tuple[str, ...]) -> dict:
    try:
        return parse_key_fields(data, allowed)
    except ValueError as exc:
        raise GatewayError(400, str(exc)) from None


def _changed(request: web.Request, record: KeyRecord) -> None:
    """This process at once; other processes hear NOTIFY (keys/events.py) and do the same."""
    request.app[KEY_CACHE].invalidate(record.id)
    if not record.is_active:  # revoked, for good: its limits' state is never needed again
        request.app[LIMITER].forget(record.id)


async def create_key(request: web.Request) -> web.Response:
    require_admin(request)
    fields = _fields(await read_json_object(request), CREATE_FIELDS)
    if "name" not in fields:
        raise GatewayError(400, "name is required")
    fields.setdefault("role", "user")
    settings = request.app[SETTINGS]
    fields.setdefault("rate_limit", settings.default_rate_limit)
    # An explicit null in the body means "no such limit" and wins over the default.
    fields.setdefault("burst", settings.default_burst)
    fields.setdefault("max_concurrent", settings.default_max_concurrent)
    fields.setdefault("tokens_per_day", settings.default_tokens_per_day)
    store = request.app[KEY_STORE]
    new = await store.create(**fields)
    request.app[KEY_CACHE].learn(store.digest(new.key))  # usable here at once; others hear NOTIFY
    return web.json_response({**new.record.to_json(), "key": new.key}, status=201)


async def list_keys(request: web.Request) -> web.Response:
    require_admin(request)
    records = await request.app[KEY_STORE].list()
    return web.json_response({"keys": [record.to_json() for record in records]})


async def show_key(request: web.Request) -> web.Response:
    require_admin(request)
    record = _found(await request.app[KEY_STORE].get(_key_id(request)))
    return web.json_response(record.to_json())


async def update_key(request: web.Request) -> web.Response:
    require_admin(request)
    key_id = _key_id(request)
    changes = _fields(await read_json_object(request), tuple(PARSERS))
    try:
        record = _found(await request.app[KEY_STORE].update(key_id, changes))
    except KeyRevoked as exc:
        raise GatewayError(409, str(exc)) from None
    _changed(request, record)
    return web.json_response(record.to_json())


async def revoke_key(request: web.Request) -> web.Response:
    require_admin(request)
    key_id = _key_id(request)
    record = _found(await request.app[KEY_STORE].revoke(key_id))
    _changed(request, record)
    return web.json_response(record.to_json())


def setup_key_routes(app: web.Application) -> None:
    app.router.add_post("/api/keys", create_key, expect_handler=defer_continue)
    app.router.add_get("/api/keys", list_keys)
    app.router.add_get("/api/keys/{key_id}", show_key)
    app.router.add_patch("/api/keys/{key_id}", update_key, expect_handler=defer_continue)
    app.router.add_delete("/api/keys/{key_id}", revoke_key)
