"""idp.rp.flask: the exact status, WWW-Authenticate and JSON body a client gets (RFC 6750
§3, RFC 9470 §3), through a real Flask app and the real validator."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask, jsonify, request

from idp.rp import (
    InsufficientAuthentication,
    InsufficientScope,
    InvalidToken,
    JwksCache,
    TokenValidator,
)
from idp.rp.flask import current_claims, init_app, require_token
from tests.unit.rp.conftest import (
    AUDIENCE,
    ISSUER,
    Clock,
    JwksServer,
    SigningKey,
    claims,
    sign,
)

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

PHR = "urn:idp:acr:phr"
INVALID = 'Bearer realm="wallet", error="invalid_token", error_description="The access token is invalid"'


@pytest.fixture
def app(validator: TokenValidator) -> Flask:
    app = Flask("wallet")
    init_app(app, validator, realm="wallet")

    @app.get("/balance")
    @require_token(scope="wallet:read")
    def balance() -> Any:
        return jsonify(sub=current_claims()["sub"])

    @app.post("/pay")
    @require_token(scope="wallet:pay")
    def pay() -> Any:
        # The wallet's rule: phishing-resistant assurance only above an amount.
        if (request.get_json(silent=True) or {}).get("amount", 0) > 100:
            validator.require_acr(current_claims(), PHR)
        return jsonify(paid=True)

    @app.get("/strong")
    @require_token(acr=PHR)
    def strong() -> Any:
        return jsonify(ok=True)

    @app.get("/view-raises/<what>")
    @require_token()
    def view_raises(what: str) -> Any:
        if what == "scope":
            raise InsufficientScope(["wallet:admin", "wallet:pay"])
        if what == "acr":
            raise InsufficientAuthentication("urn:idp:acr:mfa")
        if what == "recent":
            raise InsufficientAuthentication(max_age=300)
        raise InvalidToken("the view's own reason")

    return app


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_token_reaches_the_view(app: Flask, es_key: SigningKey) -> None:
    token = sign(es_key, claims(sub="alice", scope="wallet:read"))
    response = app.test_client().get("/balance", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {"sub": "alice"}


def test_no_token_is_401_with_realm_and_no_error(app: Flask) -> None:
    client = app.test_client()
    for headers in ({}, {"Authorization": "Basic dXNlcjpwYXNz"}, {"Authorization": "Digest x"}):
        response = client.get("/balance", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="wallet"'
        assert response.headers["Cache-Control"] == "no-store"


def test_invalid_token_is_401_invalid_token(app: Flask, es_key: SigningKey) -> None:
    client = app.test_client()
    for token in ("garbage", sign(es_key, claims(iss="https://evil.example")), sign(es_key, claims(exp=1)),
                  "A" * 100_000):
        response = client.get("/balance", headers=bearer(token))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == INVALID
        assert response.json == {"error": "invalid_token", "error_description": "The access token is invalid"}


def test_missing_scope_is_403_insufficient_scope(app: Flask, es_key: SigningKey) -> None:
    response = app.test_client().post("/pay", headers=bearer(sign(es_key, claims(scope="wallet:read"))))
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="wallet", error="insufficient_scope", '
        'error_description="The access token lacks a required scope", scope="wallet:pay"'
    )
    assert response.json["scope"] == "wallet:pay"


def test_insufficient_acr_is_401_insufficient_user_authentication(app: Flask, es_key: SigningKey) -> None:
    expected = ('Bearer realm="wallet", error="insufficient_user_authentication", '
                'error_description="A stronger authentication is required", acr_values="urn:idp:acr:phr"')
    client = app.test_client()
    mfa_token = sign(es_key, claims(acr="urn:idp:acr:mfa"))
    response = client.get("/strong", headers=bearer(mfa_token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == expected
    assert response.json["acr_values"] == PHR
    # The wallet's own rule inside the view: a small payment passes, a large one asks for phr.
    assert client.post("/pay", headers=bearer(mfa_token), json={"amount": 5}).status_code == 200
    response = client.post("/pay", headers=bearer(mfa_token), json={"amount": 500})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == expected
    phr_token = sign(es_key, claims(acr=PHR))
    assert client.post("/pay", headers=bearer(phr_token), json={"amount": 500}).json == {"paid": True}


def test_errors_raised_by_a_view_are_answered_the_same_way(app: Flask, es_key: SigningKey) -> None:
    client = app.test_client()
    token = bearer(sign(es_key))
    response = client.get("/view-raises/scope", headers=token)
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].endswith('scope="wallet:admin wallet:pay"')
    response = client.get("/view-raises/acr", headers=token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].endswith('acr_values="urn:idp:acr:mfa"')
    response = client.get("/view-raises/recent", headers=token)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="wallet", error="insufficient_user_authentication", '
        'error_description="A stronger authentication is required", max_age="300"')
    assert response.json["max_age"] == 300
    response = client.get("/view-raises/invalid", headers=token)
    assert (response.status_code, response.headers["WWW-Authenticate"]) == (401, INVALID)
    assert "the view's own reason" not in response.get_data(as_text=True)  # specifics stay in the log


@pytest.mark.parametrize("header", [
    "Bearer", "Bearer ", "Bearer  abc", "Bearer a b", "Bearer abc,def", "Bearer \"abc\"", "Bearer ä.ö.ü",
    "Bearer \u202eabc", "bearer =abc", "Bearer abc\t",
])
def test_malformed_authorization_header_is_400_invalid_request(app: Flask, header: str) -> None:
    response = app.test_client().get("/balance", headers={"Authorization": header})
    assert response.status_code == 400
    assert response.headers["WWW-Authenticate"] == (
        'Bearer realm="wallet", error="invalid_request", error_description="The request is malformed"')
    assert response.json["error"] == "invalid_request"


def test_token_in_header_and_body_is_400(app: Flask, es_key: SigningKey) -> None:
    token = sign(es_key, claims(scope="wallet:pay"))
    response = app.test_client().post("/pay", headers=bearer(token), data={"access_token": token})
    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_token_in_query_string_is_never_used(app: Flask, es_key: SigningKey) -> None:
    """RFC 9700 §2.5: a URI-borne token ends up in logs; it is refused, alone or not."""
    token = sign(es_key, claims(scope="wallet:read"))
    client = app.test_client()
    response = client.get("/balance", query_string={"access_token": token})
    assert response.status_code == 400
    response = client.get("/balance", query_string={"access_token": token}, headers=bearer(token))
    assert response.status_code == 400
    response = client.post("/pay", data={"access_token": token})
    assert response.status_code == 400


def test_json_body_with_access_token_does_not_count_as_a_second_token(app: Flask, es_key: SigningKey) -> None:
    """Only form bodies carry tokens in RFC 6750 §2.2; a JSON field of that name is the view's business."""
    token = sign(es_key, claims(scope="wallet:pay"))
    response = app.test_client().post("/pay", headers=bearer(token), json={"access_token": "x", "amount": 1})
    assert response.status_code == 200


def test_provider_unreachable_is_503_not_401(jwks_server: JwksServer, es_key: SigningKey, clock: Clock) -> None:
    """A client told 401 would throw its good token away and fetch another, at once."""
    jwks_server.status = 500
    v = TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=JwksCache(jwks_server.jwks_uri, clock=clock))
    app = Flask("wallet")
    init_app(app, v)

    @app.get("/x")
    @require_token()
    def x() -> Any:
        return "no"

    response = app.test_client().get("/x", headers=bearer(sign(es_key)))
    assert response.status_code == 503
    assert response.json["error"] == "temporarily_unavailable"
    assert "WWW-Authenticate" not in response.headers


def test_default_realm_is_the_audience(validator: TokenValidator) -> None:
    app = Flask("wallet")
    init_app(app, validator)

    @app.get("/x")
    @require_token()
    def x() -> Any:
        return "no"

    assert app.test_client().get("/x").headers["WWW-Authenticate"] == f'Bearer realm="{AUDIENCE}"'


def test_current_claims_outside_a_protected_view_is_an_error(app: Flask) -> None:
    with app.test_request_context("/"), pytest.raises(RuntimeError):
        current_claims()
