"""The key format: prefix, entropy, checksum, and the HMAC digest."""

from __future__ import annotations

import hashlib
import hmac
import random
import string
import zlib

import pytest

from proxy.keys.format import (
    _PAIRS,
    KEY_LENGTH,
    KeyDigester,
    _checksum,
    display_prefix,
    generate_key,
    has_key_format,
    key_digest,
)
from proxy.passthrough.model_names import model_allowed


def test_generated_keys_are_prefixed_unique_and_checksummed():
    keys = {generate_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in list(keys)[:50]:
        assert key.startswith("olg_") and len(key) == KEY_LENGTH
        assert has_key_format(key)


def _base62_digit_by_digit(number: int, width: int) -> str:
    digits = ""
    for _ in range(width):
        number, rest = divmod(number, 62)
        digits = (string.digits + string.ascii_letters)[rest] + digits
    return digits


def test_the_checksum_is_the_crc32_in_six_base62_digits():
    """Keys already issued keep their checksum: the same digits as dividing one digit at a time."""
    randomly = random.Random(5)
    bodies = ["", "0" * 32, "z" * 32] + ["".join(randomly.choices("abcXYZ0189", k=32)) for _ in range(20_000)]
    for body in bodies:
        assert _checksum(body) == _base62_digit_by_digit(zlib.crc32(body.encode()), 6)
    for crc in (0, 1, 61, 62, 3843, 3844, 62**3, 62**4 - 1, 2**31, 2**32 - 1):
        assert _PAIRS[crc // 3844**2] + _PAIRS[crc // 3844 % 3844] + _PAIRS[crc % 3844] == _base62_digit_by_digit(
            crc, 6
        )


def test_a_mistyped_key_fails_its_checksum_offline():
    key = generate_key()
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    assert not has_key_format(typo)


def test_junk_and_truncated_keys_do_not_have_the_format():
    key = generate_key()
    for junk in ("", "x" * 300, "ключ-ключ-ключ", key[:-1], key + "x", "olg_" + "é" * 38):
        assert not has_key_format(junk)


def test_digest_depends_on_the_secret():
    key = generate_key()
    assert key_digest("a" * 32, key) != key_digest("b" * 32, key)
    assert len(key_digest("a" * 32, key)) == 32


@pytest.mark.parametrize(
    "secret",
    ["s", "a" * 32, "b" * 63, "c" * 64, "d" * 65, "e" * 200, "sécret-ключ-🔑", "x" * 40 + "\u00ff" * 30],
)
def test_the_request_path_digest_is_the_stored_one_for_any_secret(secret: str):
    """Keys shorter than SHA-256's block, as long, longer (hashed first, RFC 2104), and not ASCII."""
    digester = KeyDigester(secret)
    for presented in ("", generate_key(), "demo-admin-key-12345", "x" * 256, "ключ"):
        expected = hmac.new(secret.encode(), presented.encode(), hashlib.sha256).digest()
        assert digester.digest(presented) == key_digest(secret, presented) == expected
    assert digester.digest("a") == digester.digest("a")  # the kept states are copied, never advanced
    assert repr(digester) == "KeyDigester()"


def test_display_prefix_reveals_little_of_operator_keys():
    assert display_prefix(generate_key()).startswith("olg_")
    assert display_prefix("demo-admin-key-12345") == "demo"


def test_model_allow_list_follows_ollama_names():
    assert model_allowed(None, "anything")
    assert model_allowed(["llama3"], "llama3:latest")
    assert model_allowed(["llama3:latest"], "llama3")
    assert not model_allowed(["llama3"], "llama3:70b")
    assert model_allowed(["llama3:*"], "llama3:70b")
    assert not model_allowed(["llama3"], "mistral")
    assert not model_allowed([], "llama3")
