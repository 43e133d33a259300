"""json_text.loads gives what json.loads gives, value for value and error for error, whichever parser answers."""

from __future__ import annotations

import json
import math

import pytest

from proxy.values import json_text

TEXTS = [
    b'{"model":"llama3.2","messages":[{"role":"user","content":"hi"}],"stream":false}',
    b'{"model":"a","x":1,"model":"b"}',  # a duplicate key: the last value, where the first stood
    b' \t\n{"a":1}\r\n',
    b'{"n":18446744073709551615,"m":-9223372036854775808}',  # the edges of 64 bits: orjson, ints
    b'{"n":18446744073709551616}',  # past them: json.loads, still an int
    b'{"n":123456789012345678901234567890,"f":1.5}',
    b'{"s":"12345678901234567890123"}',  # digits in a string: the slower parse, the same value
    b'{"f":0.1,"g":-0.0,"h":2.2250738585072011e-308,"i":1e308,"j":5e-324,"k":-0}',
    b'{"a":NaN,"b":Infinity,"c":-Infinity}',  # beyond RFC 8259: json.loads accepts them
    b'{"a":1e400}',  # out of a double's range: inf
    b'{"a":"\\ud800"}',  # a lone surrogate escape
    b'\xef\xbb\xbf{"a":1}',  # a UTF-8 byte-order mark
    b'{"a":"\\u0000\\n\\"\\\\\\/"}',
    '{"a":"é ☃ 😀"}'.encode(),
    b'"just a string"',
    b"[1,2,3]",
    b"null",
    b"",
    b"   ",
    b'{"a":1} x',
    b'{"a":1,}',
    b"{'a':1}",
    b'{"a":"\xff"}',  # not UTF-8
    b'{"a":01}',
    b'{"a":.5}',
    b'{"a":"tab\there"}',  # a raw control character inside a string
    b"[" * 200 + b"]" * 200,
    b"[" * 2000 + b"]" * 2000,  # past orjson's nesting limit
    b"[" * 1000 + b"]" * 1000,  # within orjson's, past json.loads's recursion
    bytearray(b'{"model":"m"}'),
]


def _outcome(parse, text):
    try:
        value = parse(text)
    except (ValueError, RecursionError) as exc:
        return ("error", type(exc))
    return ("value", json.dumps(value, allow_nan=True), _types(value))


def _types(value):
    """The types inside, which json.dumps would blur (1 and 1.0 print differently, but True and 1?)."""
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return type(value).__name__


@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_the_same_value_or_the_same_error_as_json_loads(text):
    assert _outcome(json_text.loads, text) == _outcome(json.loads, text)
    if isinstance(text, bytes):
        try:
            as_str = text.decode()
        except UnicodeDecodeError:
            return
        assert _outcome(json_text.loads, as_str) == _outcome(json.loads, as_str)


def test_keys_keep_their_order():
    text = b'{"z":1,"a":2,"m":{"y":1,"b":2}}'
    assert list(json_text.loads(text)) == ["z", "a", "m"] and list(json_text.loads(text)["m"]) == ["y", "b"]


@pytest.mark.parametrize(
    "text",
    [
        b'{"n":99999999999999999999}',
        b'{"n":10000000000000000000}',
        b"[12345678901234567890123]",
        b'{"n":-98765432109876543210}',
    ],
)
def test_integers_of_twenty_digits_or_more_stay_integers(text):
    value = json_text.loads(text)
    assert (
        value == json.loads(text) and type(next(iter(value.values())) if isinstance(value, dict) else value[0]) is int
    )
    assert json_text.loads(text.decode()) == json.loads(text)


def test_inputs_of_other_types_raise_what_json_loads_raises():
    for value in (memoryview(b"{}"), None, 1):
        with pytest.raises(TypeError):
            json_text.loads(value)
