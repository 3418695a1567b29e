"""The one adapter for JOSE (joserfc): key generation, JWS signing and verification.

Parameters are fixed here: ES256 (P-256) by default, EdDSA with Ed25519 also offered.
Verification never trusts the token's own ``alg``: the key is looked up by ``kid`` and
only the algorithm stored with that key is allowed, so ``alg: none`` and the classic
"HS256 keyed with the public key" confusion (RFC 8725 §2.1, §3.1) cannot verify.
joserfc errors become ``InvalidJwt``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, Key, OKPKey, import_key
from joserfc.jwa import EdDSAAlgorithm
from joserfc.jws import JWSRegistry

# Defined apart so the command line can name them without importing this module.
from idp.algorithms import ALGORITHMS, DEFAULT_ALGORITHM  # noqa: F401 - re-exported as jose.*

# A JWT larger than this is not one of ours (ours are well under 2 KB).
MAX_JWT_LENGTH = 8192


class InvalidJwt(ValueError):
    """Malformed, wrongly signed, or not verifiable with any key we hold."""


class _EdDSA(EdDSAAlgorithm):
    # RFC 9864 deprecates the polymorphic "EdDSA" name in favour of "Ed25519", and
    # joserfc warns on every use. OpenID Connect relying parties (and the at_hash rule
    # of OIDC Core) still only know "EdDSA"; we only ever pair it with Ed25519 keys,
    # which is exactly the unambiguous case RFC 9864 keeps "Ed25519" for.
    security_warning = None


class _Registry(JWSRegistry):
    algorithms = {**JWSRegistry.algorithms, "EdDSA": _EdDSA()}


def _registry(alg: str) -> JWSRegistry:
    return _Registry(algorithms=[alg])


@dataclass(frozen=True)
class GeneratedKey:
    kid: str
    alg: str
    public_jwk: dict[str, str]
    private_pem: bytes


def generate(alg: str) -> GeneratedKey:
    key: Key
    if alg == "ES256":
        key = ECKey.generate_key("P-256", private=True)
    elif alg == "EdDSA":
        key = OKPKey.generate_key("Ed25519", private=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    # Derived from the RFC 7638 thumbprint, prefixed so it never starts with "-" (a CLI argument).
    kid = f"{alg.lower()}-{key.thumbprint()[:27]}"
    public = dict(key.as_dict(private=False))
    public.update(kid=kid, alg=alg, use="sig")
    return GeneratedKey(kid=kid, alg=alg, public_jwk=public, private_pem=key.as_pem(private=True))


def load_private(pem: bytes, *, kid: str, alg: str) -> Key:
    return import_key(pem, "EC" if alg == "ES256" else "OKP", parameters={"kid": kid, "alg": alg, "use": "sig"})


def load_public(jwk: dict[str, Any]) -> Key:
    return import_key(jwk)


def sign(claims: dict[str, Any], *, key: Key, alg: str, kid: str, typ: str = "JWT") -> str:
    header = {"alg": alg, "kid": kid, "typ": typ}
    try:
        return jwt.encode(header, claims, key, algorithms=[alg], registry=_registry(alg))
    except JoseError as error:  # pragma: no cover - our own keys and claims
        raise InvalidJwt(str(error)) from None


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header, parsed strictly enough to pick a key; not yet trusted."""
    if not isinstance(token, str) or len(token) > MAX_JWT_LENGTH or token.count(".") != 2:
        raise InvalidJwt("not a compact JWS")
    encoded = token.split(".", 1)[0]
    try:
        header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidJwt("unreadable JWS header") from None
    if not isinstance(header, dict):
        raise InvalidJwt("unreadable JWS header")
    return header


def unverified_claims(token: str) -> dict[str, Any]:
    """Claims of a JWT we have just signed ourselves (never of one we received)."""
    encoded = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))


def verify(token: str, *, key: Key, alg: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token signed by ``key`` with exactly ``alg``; claims not yet validated."""
    try:
        decoded = jwt.decode(token, key, algorithms=[alg], registry=_registry(alg))
    except (JoseError, ValueError, TypeError):
        raise InvalidJwt("signature does not verify") from None
    if decoded.header.get("alg") != alg:
        raise InvalidJwt("unexpected algorithm")
    return dict(decoded.header), dict(decoded.claims)
