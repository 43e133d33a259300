"""is_ascii_digits: the whole numbers the gateway reads from text are ASCII digits only."""

from __future__ import annotations

import argparse

import pytest

from proxy.cli.main import _workers_flag
from proxy.keys.fields import parse_positive_int
from proxy.routes.query_params import parse_int
from proxy.settings import SettingsError, parse_port, parse_setting
from proxy.values.digits import is_ascii_digits

# "²" passes str.isdigit() and then fails int(); "٣" passes both, yet is no number a user types here.
NOT_ASCII = ["\u00b2", "1\u00b2", "\u0663", "\uff11"]


def test_ascii_digits_only():
    assert is_ascii_digits("0123456789")
    assert not any(is_ascii_digits(value) for value in [*NOT_ASCII, "", "-1", "+1", "1_000", " 1", "1.0"])


@pytest.mark.parametrize("value", NOT_ASCII)
def test_every_parser_refuses_other_digits_with_its_own_message(value):
    with pytest.raises(ValueError, match="^status must be a whole number from 100 to 599$"):
        parse_int("status", value, 100, 599)
    with pytest.raises(ValueError, match="^rate_limit must be a whole number"):
        parse_positive_int("rate_limit", value)
    with pytest.raises(ValueError, match="is not a port number"):
        parse_port(value)
    with pytest.raises(SettingsError, match="LOG_RETENTION_DAYS: .* is not a whole number"):
        parse_setting("LOG_RETENTION_DAYS", value)
    with pytest.raises(argparse.ArgumentTypeError, match="is not a number of workers"):
        _workers_flag(value)
