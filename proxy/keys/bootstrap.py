"""Keys ensured at start: the demo keys from the environment, or a first admin key on a new install."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator

from aiohttp import web

from proxy.keys.store import KEY_STORE, KeyStore
from proxy.settings import Settings
from proxy.state import POOL, SETTINGS

log = logging.getLogger(__name__)

STARTUP_KEYS_LOCK_ID = 0x6F6C6B657973  # "olkeys"; migrations.ADVISORY_LOCK_ID is another lock


async def ensure_startup_keys(store: KeyStore, settings: Settings) -> None:
    demo = [("demo-admin", "admin", settings.demo_admin_key), ("demo-user", "user", settings.demo_user_key)]
    demo = [(name, role, key) for name, role, key in demo if key]
    for name, role, key in demo:
        await store.ensure(key, name=name, role=role, rate_limit=settings.default_rate_limit)
    if demo:
        log.warning("demo keys are on (%s): do not use them in production", ", ".join(n for n, _, _ in demo))
        return
    if await store.count_active_admins() == 0:
        new = await store.create(name="first-admin", role="admin", rate_limit=settings.default_rate_limit)
        # Printed, never logged: this console line is the only place the key ever appears.
        print(
            f"\nNo admin key existed, so one was created. It is shown this once; keep it safe:\n\n"
            f"    {new.key}\n\n"
            f"Use it as 'Authorization: Bearer <key>' to create more keys at /api/keys.\n",
            file=sys.stderr,
            flush=True,
        )


async def startup_keys_context(app: web.Application) -> AsyncIterator[None]:
    # Gateways starting together (serve --workers, replicas) would each count no admin and each
    # create one: a session advisory lock makes them take turns, so the later ones find it.
    async with app[POOL].acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", STARTUP_KEYS_LOCK_ID)
        try:
            await ensure_startup_keys(app[KEY_STORE], app[SETTINGS])
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", STARTUP_KEYS_LOCK_ID)
    yield
