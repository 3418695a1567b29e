"""A software WebAuthn authenticator: a test double for a hardware device that cannot run here.

It builds real ``none`` attestations and ES256 assertions (EC P-256 via ``cryptography``,
CBOR via ``cbor2``) exactly as WebAuthn Level 3 §6.1 and §6.5 lay them out, so the
server verifies them with the real py_webauthn code path. Each knob it offers (rp_id,
origin, challenge, sign_count, user_verified) is one of the attacks the tests name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

FLAG_UP = 0x01
FLAG_UV = 0x04
FLAG_AT = 0x40


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class SoftCredential:
    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    def cose_public_key(self) -> bytes:
        numbers = self.private_key.public_key().public_numbers()
        return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})


@dataclass
class SoftAuthenticator:
    origin: str
    rp_id: str
    user_verified: bool = True
    credentials: list[SoftCredential] = field(default_factory=list)

    def _flags(self, extra: int = 0) -> int:
        return FLAG_UP | (FLAG_UV if self.user_verified else 0) | extra

    def _client_data(self, kind: str, challenge: str, origin: str | None) -> bytes:
        return json.dumps(
            {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        ).encode()

    def create(
        self, public_key: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
        challenge: str | None = None, credential_id: bytes | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.create() for options as the server sent them (JSON)."""
        rp = rp_id or public_key["rp"]["id"]
        credential = SoftCredential(
            credential_id=credential_id or secrets.token_bytes(32),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            rp_id=rp,
            user_handle=unb64url(public_key["user"]["id"]),
        )
        attested = (
            bytes(16)  # AAGUID: zeros, as attestation "none" gives
            + len(credential.credential_id).to_bytes(2, "big")
            + credential.credential_id
            + credential.cose_public_key()
        )
        auth_data = (
            hashlib.sha256(rp.encode()).digest()
            + bytes([self._flags(FLAG_AT)])
            + credential.sign_count.to_bytes(4, "big")
            + attested
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        client_data = self._client_data("webauthn.create", challenge or public_key["challenge"], origin)
        self.credentials.append(credential)
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self, public_key: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
        challenge: str | None = None, sign_count: int | None = None, credential: SoftCredential | None = None,
    ) -> dict[str, Any]:
        """navigator.credentials.get(): an allow-listed credential, else a discoverable one."""
        if credential is None:
            allowed = {unb64url(c["id"]) for c in public_key.get("allowCredentials") or []}
            candidates = [c for c in self.credentials if not allowed or c.credential_id in allowed]
            assert candidates, "no credential for these options"
            credential = candidates[-1]
        credential.sign_count = credential.sign_count + 1 if sign_count is None else sign_count
        rp = rp_id or credential.rp_id
        auth_data = (
            hashlib.sha256(rp.encode()).digest() + bytes([self._flags()]) + credential.sign_count.to_bytes(4, "big")
        )
        client_data = self._client_data("webauthn.get", challenge or public_key["challenge"], origin)
        signature = credential.private_key.sign(
            auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return {
            "id": b64url(credential.credential_id),
            "rawId": b64url(credential.credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": b64url(credential.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }
