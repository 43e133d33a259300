"""Whole numbers written in ASCII digits, the only ones the gateway reads from text."""

from __future__ import annotations


def is_ascii_digits(value: str) -> bool:
    """`str.isdigit()` alone also accepts "²" and other digits that `int()` then refuses."""
    return value.isascii() and value.isdigit()
