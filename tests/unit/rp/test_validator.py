"""TokenValidator against the tokens it must refuse (issue 8, Done-when 2)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest
from joserfc import jws
from joserfc.jwk import OctKey

from idp.rp import (
    ACR_ORDER,
    InsufficientAuthentication,
    InsufficientScope,
    InvalidToken,
    JwksCache,
    TokenValidator,
)
from idp.rp.validator import _Registry
from tests.unit.rp.conftest import (
    AUDIENCE,
    ISSUER,
    JwksServer,
    SigningKey,
    b64,
    claims,
    new_key,
    sign,
)

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def test_valid_tokens_of_both_algorithms_verify(validator: TokenValidator, es_key: SigningKey,
                                                 ed_key: SigningKey) -> None:
    for key in (es_key, ed_key):
        got = validator.validate(sign(key, claims(sub="alice")), scope="wallet:pay", acr="urn:idp:acr:mfa")
        assert got["sub"] == "alice"


def test_audience_list_containing_ours_is_accepted(validator: TokenValidator, es_key: SigningKey) -> None:
    assert validator.validate(sign(es_key, claims(aud=["https://shop.example", AUDIENCE])))["aud"][1] == AUDIENCE


def test_application_at_jwt_typ_is_accepted(validator: TokenValidator, es_key: SigningKey) -> None:
    validator.validate(sign(es_key, typ="application/at+jwt"))


@pytest.mark.parametrize(("overrides", "reason"), [
    ({"iss": "https://evil.example"}, "wrong issuer"),
    ({"iss": ISSUER + "/"}, "wrong issuer"),
    ({"aud": "https://shop.example"}, "wrong audience"),
    ({"aud": ["https://shop.example"]}, "wrong audience"),
    ({"aud": [["https://wallet.example"]]}, "wrong audience"),
    ({"exp": int(time.time()) - 1}, "expired"),
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"exp": None}, "missing claims"),
    ({"exp": "9999999999"}, "exp is not a number"),
    ({"exp": True}, "exp is not a number"),
    ({"exp": 10**400}, "out of range"),
    ({"nbf": int(time.time()) + 3600}, "not yet valid"),
    ({"iat": int(time.time()) + 3600}, "issued in the future"),
    ({"jti": None}, "missing claims"),
    ({"sub": 42}, "sub is not a string"),
])
def test_claims_that_are_refused(validator: TokenValidator, es_key: SigningKey, overrides: dict[str, Any],
                                 reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        validator.validate(sign(es_key, claims(**overrides)))


def test_nbf_and_iat_within_leeway_are_accepted(validator: TokenValidator, es_key: SigningKey) -> None:
    soon = int(time.time()) + 10
    validator.validate(sign(es_key, claims(nbf=soon, iat=soon)))


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "id_token", "at+jwt ", ["at+jwt"]])
def test_wrong_typ_is_refused(validator: TokenValidator, es_key: SigningKey, typ: Any) -> None:
    """An ID token (typ JWT) of the same issuer must not open an API (RFC 9068 §4)."""
    with pytest.raises(InvalidToken, match="typ"):
        validator.validate(sign(es_key, typ=typ))


def test_alg_none_is_refused(validator: TokenValidator, es_key: SigningKey) -> None:
    header = {"alg": "none", "kid": es_key.kid, "typ": "at+jwt"}
    for signature in ("", "AAAA"):
        with pytest.raises(InvalidToken):
            validator.validate(f"{b64(header)}.{b64(claims())}.{signature}")
    with pytest.raises(InvalidToken, match="not allowed"):
        validator.validate(f"{b64(header)}.{b64(claims())}.AAAA")


def test_hs256_signed_with_the_public_key_is_refused(validator: TokenValidator, jwks_server: JwksServer,
                                                    es_key: SigningKey) -> None:
    """RFC 8725 §2.1: the attacker HMACs with the published key as the secret."""
    secrets = [
        json.dumps(es_key.public_jwk()).encode(),
        es_key.key.as_pem(private=False),
        base64.urlsafe_b64decode(es_key.public_jwk()["x"] + "=="),
    ]
    for secret in secrets:
        header = {"alg": "HS256", "kid": es_key.kid, "typ": "at+jwt"}
        signing_input = f"{b64(header)}.{b64(claims())}"
        # By hand: joserfc itself refuses a public key as an HMAC secret.
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        with pytest.raises(InvalidToken, match="not allowed"):
            validator.validate(f"{signing_input}.{b64(mac)}")


def test_hs256_is_refused_even_when_the_jwks_carries_an_oct_key(jwks_server: JwksServer, clock: Any) -> None:
    secret = b"s" * 32
    jwks_server.keys = [{"kty": "oct", "kid": "hmac", "alg": "HS256", "k": b64(secret)}]
    token = jws.serialize_compact({"alg": "HS256", "kid": "hmac", "typ": "at+jwt"}, json.dumps(claims()).encode(),
                                  OctKey.import_key(secret), algorithms=["HS256"],
                                  registry=_Registry(algorithms=["HS256"]))
    cache = JwksCache(jwks_server.jwks_uri, clock=clock)
    with pytest.raises(InvalidToken):
        TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=cache).validate(token)
    assert cache.get("hmac") is None  # never imported as a key at all


@pytest.mark.parametrize("algorithms", [("HS256",), ("ES256", "none"), ("RS256",), ()])
def test_a_validator_cannot_be_configured_with_unsafe_algorithms(jwks_server: JwksServer,
                                                                 algorithms: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=JwksCache(jwks_server.jwks_uri), algorithms=algorithms)


def test_alg_not_matching_the_key_is_refused(validator: TokenValidator, es_key: SigningKey,
                                             ed_key: SigningKey) -> None:
    """A token that names the EC key but says EdDSA (signed with the Ed25519 key)."""
    token = sign(ed_key, kid=es_key.kid)
    with pytest.raises(InvalidToken, match="does not match the key"):
        validator.validate(token)
    token = sign(es_key, kid=ed_key.kid)
    with pytest.raises(InvalidToken, match="does not match the key"):
        validator.validate(token)


def test_an_algorithm_left_off_the_allow_list_is_refused(jwks_server: JwksServer, ed_key: SigningKey,
                                                          clock: Any) -> None:
    jwks_server.keys = [ed_key.public_jwk()]
    only_es = TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=JwksCache(jwks_server.jwks_uri, clock=clock),
                             algorithms=("ES256",))
    with pytest.raises(InvalidToken, match="not allowed"):
        only_es.validate(sign(ed_key))


def test_a_key_without_alg_still_only_verifies_what_its_curve_can_sign(jwks_server: JwksServer, clock: Any) -> None:
    key = new_key("ES256")
    jwks_server.keys = [{k: v for k, v in key.public_jwk().items() if k != "alg"}]
    v = TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=JwksCache(jwks_server.jwks_uri, clock=clock))
    v.validate(sign(key))
    with pytest.raises(InvalidToken, match="does not match"):
        v.validate(sign(new_key("EdDSA", kid=key.kid)))


def test_signature_by_another_key_with_the_same_kid_is_refused(validator: TokenValidator,
                                                               es_key: SigningKey) -> None:
    with pytest.raises(InvalidToken, match="signature"):
        validator.validate(sign(new_key("ES256", kid=es_key.kid)))


def test_tampered_payload_is_refused(validator: TokenValidator, es_key: SigningKey) -> None:
    header, _, signature = sign(es_key).split(".")
    forged = f"{header}.{b64(claims(scope='wallet:pay wallet:admin', acr='urn:idp:acr:phr'))}.{signature}"
    with pytest.raises(InvalidToken, match="signature"):
        validator.validate(forged)


def test_missing_scope(validator: TokenValidator, es_key: SigningKey) -> None:
    token = sign(es_key, claims(scope="openid wallet:read"))
    assert validator.validate(token, scope="wallet:read")
    with pytest.raises(InsufficientScope) as raised:
        validator.validate(token, scope="wallet:read wallet:pay")
    assert raised.value.scope == "wallet:read wallet:pay"
    for bad in (None, ["wallet:pay"], "wallet:payments"):
        with pytest.raises(InsufficientScope):
            validator.validate(sign(es_key, claims(scope=bad)), scope="wallet:pay")


@pytest.mark.parametrize(("presented", "needed", "ok"), [
    ("urn:idp:acr:pwd", "urn:idp:acr:mfa", False),
    ("urn:idp:acr:mfa", "urn:idp:acr:phr", False),
    ("urn:idp:acr:pwd", "urn:idp:acr:phr", False),
    (None, "urn:idp:acr:pwd", False),
    ("urn:other:acr:gold", "urn:idp:acr:pwd", False),
    (["urn:idp:acr:phr"], "urn:idp:acr:pwd", False),
    ("urn:idp:acr:phr", "urn:idp:acr:phr", True),
    ("urn:idp:acr:phr", "urn:idp:acr:mfa", True),
    ("urn:idp:acr:mfa", "urn:idp:acr:mfa", True),
])
def test_insufficient_acr(validator: TokenValidator, es_key: SigningKey, presented: Any, needed: str,
                          ok: bool) -> None:
    token = sign(es_key, claims(acr=presented))
    if ok:
        validator.validate(token, acr=needed)
        return
    with pytest.raises(InsufficientAuthentication) as raised:
        validator.validate(token, acr=needed)
    assert raised.value.acr_values == needed
    claims_ok = validator.validate(token)
    with pytest.raises(InsufficientAuthentication):
        validator.require_acr(claims_ok, needed)


def test_acr_order_is_weakest_first() -> None:
    assert ACR_ORDER == ("urn:idp:acr:pwd", "urn:idp:acr:mfa", "urn:idp:acr:phr")


@pytest.mark.parametrize("token", [
    None, 42, b"a.b.c", "", ".", "..", "a.b", "a.b.c.d", "a.b.c", "!!!.###.$$$",
    "eyJ.eyJ.sig", "x" * 100_000, "a" * 8000 + ".b.c",
    "ö.ä.ü", "\u202e.\u0000.\ud800", "eyJhbGciOiJFUzI1NiJ9.e30.AA\n",
    b64([1, 2]) + "." + b64({}) + ".AA",
    b64(b"\xff\xfe") + "." + b64({}) + ".AA",
    b64({"alg": "ES256", "kid": ["x"], "typ": "at+jwt"}) + "." + b64({}) + ".AA",
    b64({"alg": "ES256", "kid": "k" * 100_000, "typ": "at+jwt"}) + ".e30.AA",
    b64({"alg": {"$": 1}, "typ": "at+jwt"}) + ".e30.AA",
    b64(b"[" * 5000) + ".e30.AA",
])
def test_malformed_tokens_are_invalid_not_a_crash(validator: TokenValidator, token: Any) -> None:
    with pytest.raises(InvalidToken):
        validator.validate(token)


def test_malformed_payload_under_a_valid_signature_is_invalid(validator: TokenValidator,
                                                               es_key: SigningKey) -> None:
    header = {"alg": "ES256", "kid": es_key.kid, "typ": "at+jwt"}
    for payload in (b"not json", b"[1]", b"\xff", b"null"):
        token = jws.serialize_compact(header, payload, es_key.key, algorithms=["ES256"])
        with pytest.raises(InvalidToken):
            validator.validate(token)


def test_introspection_after_the_local_checks(jwks_server: JwksServer, es_key: SigningKey, clock: Any) -> None:
    from idp.rp import Introspector

    jwks_server.keys = [es_key.public_jwk()]
    v = TokenValidator(
        issuer=ISSUER, audience=AUDIENCE, jwks=JwksCache(jwks_server.jwks_uri, clock=clock),
        introspector=Introspector(jwks_server.url + "/introspect", client_id="wallet id", client_secret="s:cret"),
    )
    token = sign(es_key)
    v.validate(token)
    assert jwks_server.introspection_requests == []  # not asked: no round trip
    v.validate(token, introspect=True)
    sent = jwks_server.introspection_requests[-1]
    # RFC 6749 §2.3.1: urlencoded, then Basic.
    assert base64.b64decode(sent["authorization"].removeprefix("Basic ")) == b"wallet%20id:s%3Acret"
    assert "token_type_hint=access_token" in sent["body"]
    jwks_server.introspection = {"active": False}
    with pytest.raises(InvalidToken, match="not active"):
        v.validate(token, introspect=True)
    jwks_server.introspection = {"active": "true"}
    with pytest.raises(InvalidToken, match="not active"):
        v.validate(token, introspect=True)
    # A locally bad token never reaches the provider.
    before = len(jwks_server.introspection_requests)
    with pytest.raises(InvalidToken):
        v.validate(sign(es_key, claims(iss="https://evil.example")), introspect=True)
    assert len(jwks_server.introspection_requests) == before


def test_for_issuer_reads_discovery_and_its_acr_order(jwks_server: JwksServer, es_key: SigningKey) -> None:
    jwks_server.keys = [es_key.public_jwk()]
    issuer = jwks_server.url
    order = ["urn:x:bronze", "urn:x:silver", "urn:x:gold"]
    jwks_server.discovery = {"issuer": issuer, "jwks_uri": jwks_server.jwks_uri,
                             "introspection_endpoint": issuer + "/introspect", "acr_values_supported": order}
    v = TokenValidator.for_issuer(issuer, AUDIENCE, client_id="wallet", client_secret="secret")
    assert v.acr_order == tuple(order) and v.introspector is not None
    token = sign(es_key, claims(iss=issuer, acr="urn:x:silver"))
    v.validate(token, acr="urn:x:bronze", introspect=True)
    with pytest.raises(InsufficientAuthentication):
        v.validate(token, acr="urn:x:gold")
    assert TokenValidator.for_issuer(issuer, AUDIENCE).introspector is None


def test_for_issuer_refuses_a_discovery_document_naming_another_issuer(jwks_server: JwksServer) -> None:
    """OIDC Discovery §4.3: a document for another issuer would hand us its keys."""
    jwks_server.discovery = {"issuer": "https://evil.example", "jwks_uri": jwks_server.jwks_uri}
    with pytest.raises(ValueError, match="issuer"):
        TokenValidator.for_issuer(jwks_server.url, AUDIENCE)
