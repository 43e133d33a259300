"""Deprecated: the names plugins use moved to `proxy.plugin_api`."""

from __future__ import annotations

import warnings

from proxy.keys.format import API_KEY
from proxy.state import SETTINGS

__all__ = ["API_KEY", "SETTINGS"]

warnings.warn("proxy.typedefs is deprecated; import from proxy.plugin_api", DeprecationWarning, stacklevel=2)
