"""Short-lived tokens on their own: issued, verified, and refused when expired, tampered with or foreign."""

from __future__ import annotations

import base64
import uuid

import pytest

from proxy.keys.access_tokens import TOKEN_PREFIX, TokenSigner, looks_like_token

SECRET = "s" * 40
KEY_ID = uuid.UUID("6f1c7a52-3c1e-4a57-9d55-0a5f6b1c2d3e")
NOW = 1_800_000_000


def test_a_token_round_trips_with_its_claims():
    signer = TokenSigner(SECRET)
    token = signer.issue(KEY_ID, "admin", 0, NOW + 60)
    assert token.startswith(TOKEN_PREFIX) and looks_like_token(token) and len(token) < 100
    claims = signer.verify(token, NOW)
    assert (claims.key_id, claims.role, claims.state_version, claims.expires_at) == (KEY_ID, "admin", 0, NOW + 60)


def test_an_expired_token_is_refused():
    signer = TokenSigner(SECRET)
    token = signer.issue(KEY_ID, "user", 0, NOW + 60)
    assert signer.verify(token, NOW + 59.9) is not None
    assert signer.verify(token, NOW + 60) is None


def test_another_secret_refuses_it():
    token = TokenSigner(SECRET).issue(KEY_ID, "user", 0, NOW + 60)
    assert TokenSigner("t" * 40).verify(token, NOW) is None


def _tampered(token: str) -> list[str]:
    body, signature = token[len(TOKEN_PREFIX) :].split(".")
    payload = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[-1] ^= 0xFF  # a later expiry
    forged = base64.urlsafe_b64encode(bytes(payload)).rstrip(b"=").decode()
    admin = bytearray(payload)
    admin[-1] ^= 0xFF
    admin[17] = 0  # role byte -> admin
    as_admin = base64.urlsafe_b64encode(bytes(admin)).rstrip(b"=").decode()
    return [
        f"{TOKEN_PREFIX}{forged}.{signature}",
        f"{TOKEN_PREFIX}{as_admin}.{signature}",
        f"{TOKEN_PREFIX}{body}.{signature[:-2]}",
        f"{TOKEN_PREFIX}{body}.{signature}x",
        f"{TOKEN_PREFIX}{body}!.{signature}",  # a character decoding would skip
        f"{TOKEN_PREFIX}{body}",
        f"{TOKEN_PREFIX}.{signature}",
        f"{TOKEN_PREFIX}{body}.{signature}.{signature}",
        f"{TOKEN_PREFIX}ñ.{signature}",
        "olg_" + token[len(TOKEN_PREFIX) :],
    ]


@pytest.mark.parametrize("index", range(10))
def test_tampered_tokens_are_refused(index):
    signer = TokenSigner(SECRET)
    token = signer.issue(KEY_ID, "user", 0, NOW + 60)
    assert signer.verify(_tampered(token)[index], NOW) is None


def test_secret_stays_out_of_repr():
    assert SECRET not in repr(TokenSigner(SECRET))
