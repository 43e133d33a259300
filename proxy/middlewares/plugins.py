"""GATEWAY_PLUGINS: extra middlewares named by `package.module:factory`, run after the built-in chain.

Each factory is called once at startup with the Settings and returns an aiohttp middleware that
runs after auth and rate limiting; what it may rely on is in proxy.plugin_api. Any failure to
load one stops startup with one line naming GATEWAY_PLUGINS (exit code 2).

Modules are also looked for in the current directory, as `python -m` would: the installed
`ollama-gateway` command has only its own directory on sys.path, so a plugin kept beside the
configuration (or the repository's examples/) would not import. Installed modules come first.
"""

from __future__ import annotations

import importlib
import os
import sys

from aiohttp.typedefs import Middleware

from proxy.settings import Settings, SettingsError

VARIABLE = "GATEWAY_PLUGINS"


def load_plugins(settings: Settings) -> list[Middleware]:
    if settings.plugins:
        _search_current_directory()
    return [_load(path, settings) for path in settings.plugins]


def _search_current_directory() -> None:
    # Appended, not prepended (uvicorn's --app-dir prepends): a file in the directory the gateway was
    # started from must not shadow a module the gateway imports later. Only when plugins are named.
    here = os.getcwd()
    if not {"", ".", here} & set(sys.path):
        sys.path.append(here)


def _load(path: str, settings: Settings) -> Middleware:
    module_name, _, attribute = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or whatever the module raises while importing
        raise SettingsError(VARIABLE, f"cannot import {module_name!r} ({_one_line(exc)})") from None
    factory = getattr(module, attribute, None)
    if factory is None:
        raise SettingsError(VARIABLE, f"{module_name!r} has no attribute {attribute!r}")
    if not callable(factory):
        raise SettingsError(VARIABLE, f"{path} is not callable")
    try:
        middleware = factory(settings)
    except Exception as exc:
        raise SettingsError(VARIABLE, f"{path} failed ({_one_line(exc)})") from None
    if not callable(middleware):
        raise SettingsError(VARIABLE, f"{path} returned {type(middleware).__name__}, not a middleware")
    return middleware


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
