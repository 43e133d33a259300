"""Deprecated: the names plugins use moved to `proxy.plugin_api`."""

from __future__ import annotations

import warnings

from proxy.keys.format import API_KEY
from proxy.request_log.record import RECORD
from proxy.state import SETTINGS

__all__ = ["API_KEY", "RECORD", "SETTINGS"]

warnings.warn("proxy.typedefs is deprecated; import from proxy.plugin_api", DeprecationWarning, stacklevel=2)
