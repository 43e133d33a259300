"""The console's files, by the name a URL may ask for: nothing outside this list is ever served."""

from __future__ import annotations

from pathlib import Path

STATIC_DIR = Path(__file__).resolve().parent / "static"

_TYPES = {".html": "text/html", ".css": "text/css", ".js": "text/javascript", ".txt": "text/plain"}

CONSOLE_FILES = (
    "index.html",
    "console.css",
    "console.js",
    "vendor/uPlot.iife.min.js",
    "vendor/uPlot.min.css",
    "vendor/uPlot.LICENSE.txt",
)
REDOC_FILES = ("vendor/redoc.standalone.js", "vendor/redoc.LICENSE.txt", "vendor/redoc.standalone.js.LICENSE.txt")


def content_type(name: str) -> str:
    return _TYPES[Path(name).suffix]


def path_of(name: str) -> Path:
    return STATIC_DIR / name
