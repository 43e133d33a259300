"""The key format: prefix, entropy, checksum, and the HMAC digest."""

from __future__ import annotations

from proxy.keys.format import KEY_LENGTH, display_prefix, generate_key, has_key_format, key_digest
from proxy.passthrough.model_names import model_allowed


def test_generated_keys_are_prefixed_unique_and_checksummed():
    keys = {generate_key() for _ in range(1000)}
    assert len(keys) == 1000
    for key in list(keys)[:50]:
        assert key.startswith("olg_") and len(key) == KEY_LENGTH
        assert has_key_format(key)


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
