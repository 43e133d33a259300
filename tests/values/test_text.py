"""safe_text: any str in, a value PostgreSQL and Prometheus take out, unchanged when it was fine."""

from __future__ import annotations

import pytest

from proxy.values.text import REPLACEMENT, safe_optional, safe_text

UNCHANGED = ["", "llama3.2:latest", "/api/chat", "caf\u00e9", "\U0001f999 emoji", "tab\there"]
CLEANED = {
    "NUL": ("a\x00b", 10, f"a{REPLACEMENT}b"),
    "lone high surrogate": ("a\ud800", 10, f"a{REPLACEMENT}"),
    "lone low surrogate": ("\udcffz", 10, f"{REPLACEMENT}z"),
    "too long": ("x" * 3_000, 512, "x" * 512),
    "too long, cut before the bad part": ("x" * 600 + "\x00", 512, "x" * 512),
    "beyond the BMP, too long": ("\U0001f999" * 600, 512, "\U0001f999" * 512),
}


@pytest.mark.parametrize("value", UNCHANGED)
def test_storable_values_are_returned_as_they_are(value):
    assert safe_text(value, 512) == value


@pytest.mark.parametrize("value, limit, expected", CLEANED.values(), ids=CLEANED.keys())
def test_unstorable_values_are_cleaned_and_cut(value, limit, expected):
    cleaned = safe_text(value, limit)
    assert cleaned == expected
    cleaned.encode("utf-8")  # never raises


def test_none_stays_none():
    assert safe_optional(None, 5) is None and safe_optional("a\x00", 5) == f"a{REPLACEMENT}"
