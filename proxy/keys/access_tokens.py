"""Short-lived bearer tokens exchanged for a key: `olt_<payload>.<signature>`, HMAC-SHA256 signed.

Stdlib only, no JWT: the gateway is both issuer and only verifier, so a fixed 30-byte payload
(version, key id, role, the key's state version, expiry) and one MAC are all it needs, and there is
no `alg` header to confuse (RFC 8725 §2.1). The token names the key; the key itself is checked on
every use, so revoking, deactivating, expiring or changing the role of a key ends its tokens at
once, and for good: any change of role or active state bumps the key's state version (sql/004),
so undoing the change does not bring an old token back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from uuid import UUID

from aiohttp import web

TOKEN_PREFIX = "olt_"
_VERSION = 2  # 1 had no state version: such tokens are refused (they lived an hour at most)
_PAYLOAD = struct.Struct(">B16sBIQ")  # version, key id, role, key state version, expiry (UNIX seconds)
_ROLES = ("admin", "user")
# SECURITY: a key derived for tokens alone, so a token MAC can never double as a key digest.
_CONTEXT = b"ollama-gateway access token v1"


@dataclass(frozen=True, slots=True)
class AccessToken:
    key_id: UUID
    role: str
    state_version: int  # KeyRecord.state_version when issued
    expires_at: int  # UNIX seconds


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class TokenSigner:
    def __init__(self, secret_key: str) -> None:
        self._key = hmac.new(secret_key.encode(), _CONTEXT, hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "TokenSigner()"  # SECURITY: the key stays out of reprs

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()

    def issue(self, key_id: UUID, role: str, state_version: int, expires_at: int) -> str:
        payload = _PAYLOAD.pack(_VERSION, key_id.bytes, _ROLES.index(role), state_version, expires_at)
        return f"{TOKEN_PREFIX}{_b64(payload)}.{_b64(self._mac(payload))}"

    def verify(self, token: str, now: float) -> AccessToken | None:
        """The token's claims if it is ours, untampered and unexpired; else None (never a reason)."""
        body, dot, signature = token[len(TOKEN_PREFIX) :].partition(".")
        if not token.startswith(TOKEN_PREFIX) or not dot:
            return None
        try:
            payload, mac = _unb64(body), _unb64(signature)
        except (ValueError, binascii.Error):
            return None
        if _b64(payload) != body or _b64(mac) != signature:
            return None  # one spelling per token: no stray characters that decoding would skip
        # SECURITY: the MAC is compared in constant time, and before anything in the payload is used.
        if not hmac.compare_digest(self._mac(payload), mac) or len(payload) != _PAYLOAD.size:
            return None
        version, key_id, role, state_version, expires_at = _PAYLOAD.unpack(payload)
        if version != _VERSION or role >= len(_ROLES) or expires_at <= now:
            return None
        return AccessToken(UUID(bytes=key_id), _ROLES[role], state_version, expires_at)


TOKEN_SIGNER = web.AppKey("token_signer", TokenSigner)


def looks_like_token(credential: str) -> bool:
    return credential.startswith(TOKEN_PREFIX) and "." in credential
