"""idp.rp against the real provider on a live server: its tokens validate locally, a
tampered or retired one does not, and introspection sees a revocation at once."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from idp.rp import InsufficientAuthentication, InsufficientScope, InvalidToken, JwksCache, TokenValidator
from tests.fixtures import LiveServer
from tests.functional.oauth.conftest import Browser, make_user, obtain, register, start_server

SCOPE = "wallet:read wallet:pay"


@pytest.fixture
def idp(database_url: str, redis_url: str | None, tmp_path: Path) -> Iterator[LiveServer]:
    # Rotated keys sign at once, so a test can rotate and then retire the old key.
    live, stop = start_server(database_url, redis_url, tmp_path, key_upcoming_seconds=0)
    try:
        yield live
    finally:
        stop()


def service_token(live: LiveServer, client_id: str, secret: str, scope: str = SCOPE) -> str:
    response = httpx.post(live.url + "/token", data={"grant_type": "client_credentials", "scope": scope},
                          auth=(client_id, secret), timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_real_tokens_validate_and_tampered_retired_and_revoked_ones_do_not(idp: LiveServer) -> None:
    svc = register(idp, name="Wallet", grant_types=["client_credentials"], scope=SCOPE)
    assert svc.secret
    validator = TokenValidator.for_issuer(idp.url, audience=svc.client_id, client_id=svc.client_id,
                                          client_secret=svc.secret)
    token = service_token(idp, svc.client_id, svc.secret)

    claims = validator.validate(token, scope="wallet:pay")
    assert claims["iss"] == idp.url and claims["client_id"] == svc.client_id
    assert validator.validate(token, scope="wallet:read", introspect=True)["jti"] == claims["jti"]
    with pytest.raises(InsufficientScope):
        validator.validate(token, scope="wallet:admin")
    with pytest.raises(InvalidToken, match="wrong audience"):
        TokenValidator.for_issuer(idp.url, audience="https://someone.else").validate(token)

    # Tampered: a wider scope pasted into the payload under the provider's signature.
    header, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged["scope"] += " wallet:admin"
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="signature"):
        validator.validate(f"{header}.{forged_payload}.{signature}", scope="wallet:admin")

    # Revoked (RFC 7009): still fine by its signature, dead to introspection.
    revoked = service_token(idp, svc.client_id, svc.secret)
    answer = httpx.post(idp.url + "/revoke", data={"token": revoked}, auth=(svc.client_id, svc.secret), timeout=10)
    assert answer.status_code == 200
    validator.validate(revoked)
    with pytest.raises(InvalidToken, match="not active"):
        validator.validate(revoked, introspect=True)
    validator.validate(token, introspect=True)  # the other token is untouched


def test_a_token_of_a_retired_key_is_refused_once_the_keys_are_refetched(idp: LiveServer) -> None:
    svc = register(idp, name="Wallet", grant_types=["client_credentials"], scope=SCOPE)
    assert svc.secret
    clock = Clock()
    jwks = JwksCache(idp.url + "/jwks.json", clock=clock)
    validator = TokenValidator(issuer=idp.url, audience=svc.client_id, jwks=jwks)
    old = service_token(idp, svc.client_id, svc.secret)
    old_kid = json.loads(base64.urlsafe_b64decode(old.split(".")[0] + "=="))["kid"]
    validator.validate(old)

    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:
        keys = registry.services(db).signing_keys
        keys.rotate("ES256")
        keys.retire(old_kid)
        db.commit()
    new = service_token(idp, svc.client_id, svc.secret)
    assert json.loads(base64.urlsafe_b64decode(new.split(".")[0] + "=="))["kid"] != old_kid

    clock.now += 31  # the new kid is fetched on sight (one refetch), and the old one is gone with it
    validator.validate(new)
    assert jwks.fetches == 2
    with pytest.raises(InvalidToken, match="unknown kid"):
        validator.validate(old)
    fresh = TokenValidator(issuer=idp.url, audience=svc.client_id, jwks=JwksCache(idp.url + "/jwks.json"))
    with pytest.raises(InvalidToken, match="unknown kid"):
        fresh.validate(old)


def test_a_password_only_user_token_needs_step_up_for_mfa(idp: LiveServer) -> None:
    make_user(idp)
    shop = register(idp, name="Shop", scope="openid email")
    browser = Browser(idp)
    try:
        token = obtain(idp, browser, shop).token["access_token"]
    finally:
        browser.close()
    validator = TokenValidator.for_issuer(idp.url, audience=shop.client_id)
    claims = validator.validate(token, acr="urn:idp:acr:pwd")
    assert claims["acr"] == "urn:idp:acr:pwd"
    with pytest.raises(InsufficientAuthentication) as raised:
        validator.validate(token, acr="urn:idp:acr:mfa")
    assert raised.value.acr_values == "urn:idp:acr:mfa"
