"""Discovery and every endpoint it lists; introspection, revocation, client_credentials,
CORS; and bad input, which gets a 4xx JSON answer or page, never a 500."""

from __future__ import annotations

import base64
import hashlib

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.functional.oauth.conftest import make_user, new_verifier, obtain, register


def test_discovery_lists_working_endpoints(idp):
    meta = httpx.get(idp.url + "/.well-known/openid-configuration").json()
    assert meta["issuer"] == idp.url
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["response_types_supported"] == ["code"]
    assert "implicit" not in meta["grant_types_supported"] and "password" not in meta["grant_types_supported"]
    assert meta["acr_values_supported"][0] == "urn:idp:acr:pwd"  # weakest first
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["id_token_signing_alg_values_supported"] == ["ES256", "EdDSA"]
    # Each listed endpoint answers (no 404/405/500) to the simplest request it takes.
    assert httpx.get(meta["authorization_endpoint"]).status_code == 400
    assert httpx.post(meta["token_endpoint"], data={}).status_code in (400, 401)
    assert httpx.get(meta["userinfo_endpoint"]).status_code == 401
    assert httpx.get(meta["jwks_uri"]).status_code == 200
    assert httpx.post(meta["introspection_endpoint"], data={"token": "x"}).status_code == 401
    assert httpx.post(meta["revocation_endpoint"], data={"token": "x"}).status_code in (400, 401)
    assert httpx.get(meta["end_session_endpoint"]).status_code == 200


def test_jwks_has_several_keys_and_cache_control(idp):
    response = httpx.get(idp.url + "/jwks.json")
    assert response.headers["Cache-Control"].startswith("public, max-age=")
    keys = response.json()["keys"]
    assert {k["alg"] for k in keys} == {"ES256", "EdDSA"} and len(keys) >= 3
    assert all("d" not in k for k in keys)  # never a private part


def test_eddsa_client_gets_an_eddsa_id_token_with_sha512_at_hash(idp, browser_factory):
    make_user(idp)
    reg = register(idp, id_token_alg="EdDSA")
    got = obtain(idp, browser_factory(), reg)
    keys = KeySet.import_key_set(httpx.get(idp.url + "/jwks.json").json())
    import warnings

    from joserfc.errors import SecurityWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc: RFC 9864 prefers "Ed25519"
        token = jwt.decode(got.token["id_token"], keys, algorithms=["EdDSA"])
    assert token.header["alg"] == "EdDSA" and token.claims["nonce"] == got.nonce
    digest = hashlib.sha512(got.token["access_token"].encode()).digest()
    assert token.claims["at_hash"] == base64.urlsafe_b64encode(digest[:32]).rstrip(b"=").decode()


def test_access_token_is_an_rfc9068_jwt_with_truthful_acr_and_amr(idp, browser_factory):
    make_user(idp)
    reg = register(idp, access_token_seconds=120)
    got = obtain(idp, browser_factory(), reg)
    keys = KeySet.import_key_set(httpx.get(idp.url + "/jwks.json").json())
    token = jwt.decode(got.token["access_token"], keys, algorithms=["ES256"])
    assert token.header["typ"] == "at+jwt" and token.header["kid"]
    claims = token.claims
    assert claims["client_id"] == reg.client_id and claims["aud"] == reg.client_id
    assert claims["scope"] == "openid email" and claims["exp"] - claims["iat"] == 120
    assert claims["acr"] == "urn:idp:acr:pwd" and claims["amr"] == ["pwd"]
    assert got.token["expires_in"] == 120


def test_introspection_and_revocation(idp, browser_factory):
    make_user(idp)
    reg = register(idp)
    got = obtain(idp, browser_factory(), reg)
    auth = (reg.client_id, reg.secret)
    info = httpx.post(idp.url + "/introspect", data={"token": got.token["access_token"]}, auth=auth).json()
    assert info["active"] is True and info["client_id"] == reg.client_id and info["token_type"] == "Bearer"
    info = httpx.post(idp.url + "/introspect", data={"token": got.token["refresh_token"]}, auth=auth).json()
    assert info["active"] is True and info["token_type"] == "refresh_token"

    # Another (third-party) client may not look at this client's tokens.
    other = register(idp, name="Other")
    info = httpx.post(idp.url + "/introspect", data={"token": got.token["access_token"]},
                      auth=(other.client_id, other.secret)).json()
    assert info == {"active": False}

    response = httpx.post(idp.url + "/revoke", data={"token": got.token["access_token"]}, auth=auth)
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    assert httpx.post(idp.url + "/introspect", data={"token": got.token["access_token"]}, auth=auth).json() == {"active": False}
    assert httpx.post(idp.url + "/revoke", data={"token": got.token["refresh_token"]}, auth=auth).status_code == 200
    refresh = httpx.post(idp.url + "/token", auth=auth,
                         data={"grant_type": "refresh_token", "refresh_token": got.token["refresh_token"]})
    assert refresh.json()["error"] == "invalid_grant"
    # Unknown tokens: 200 (RFC 7009 section 2.2).
    assert httpx.post(idp.url + "/revoke", data={"token": "no-such-token"}, auth=auth).status_code == 200


def test_client_credentials_for_a_service_caller(idp):
    svc = register(idp, grant_types=["client_credentials"], scope="wallet:read wallet:write", first_party=True)
    response = httpx.post(idp.url + "/token", data={"grant_type": "client_credentials", "scope": "wallet:read"},
                          auth=(svc.client_id, svc.secret))
    assert response.status_code == 200, response.text
    token = response.json()
    assert token["scope"] == "wallet:read" and "refresh_token" not in token and "id_token" not in token
    info = httpx.post(idp.url + "/introspect", data={"token": token["access_token"]},
                      auth=(svc.client_id, svc.secret)).json()
    assert info["active"] is True and info["sub"] == svc.client_id
    # Not a person: userinfo refuses it.
    assert httpx.get(idp.url + "/userinfo", headers={"Authorization": "Bearer " + token["access_token"]}).status_code in (401, 403)
    wider = httpx.post(idp.url + "/token", data={"grant_type": "client_credentials", "scope": "admin"},
                       auth=(svc.client_id, svc.secret))
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:ietf:params:oauth:grant-type:device_code"])
def test_grants_we_do_not_offer_are_unsupported(idp, grant_type):
    reg = register(idp)
    response = httpx.post(idp.url + "/token", data={"grant_type": grant_type, "username": "u", "password": "p"},
                          auth=(reg.client_id, reg.secret))
    assert response.status_code == 400 and response.json()["error"] == "unsupported_grant_type"


def test_implicit_response_type_is_refused(idp):
    reg = register(idp)
    response = httpx.get(idp.url + "/authorize", params={
        "response_type": "token", "client_id": reg.client_id, "redirect_uri": reg.redirect_uri, "state": "s"})
    assert response.status_code == 302
    assert "error=unsupported_response_type" in response.headers["Location"]
    assert "access_token" not in response.headers["Location"]


def test_cors_only_for_origins_the_client_registered(idp, browser_factory):
    make_user(idp)
    reg = register(idp, public=True, redirect_uris=("https://spa.example/cb",))
    got = obtain(idp, browser_factory(), reg)
    for origin, allowed in (("https://spa.example", True), ("https://evil.example", False)):
        headers = {"Origin": origin}
        jwks = httpx.get(idp.url + "/jwks.json", headers=headers)
        assert (jwks.headers.get("Access-Control-Allow-Origin") == origin) is allowed
        info = httpx.get(idp.url + "/userinfo", headers={**headers, "Authorization": "Bearer " + got.token["access_token"]})
        assert info.status_code == 200
        assert (info.headers.get("Access-Control-Allow-Origin") == origin) is allowed
        token = httpx.post(idp.url + "/token", headers=headers, data={
            "grant_type": "refresh_token", "client_id": reg.client_id, "refresh_token": "nope"})
        assert (token.headers.get("Access-Control-Allow-Origin") == origin) is allowed
        preflight = httpx.options(idp.url + "/token", headers={**headers, "Access-Control-Request-Method": "POST"})
        assert preflight.status_code == 204
        assert (preflight.headers.get("Access-Control-Allow-Origin") == origin) is allowed


def test_a_reused_nonce_is_refused(idp, browser_factory):
    make_user(idp)
    reg = register(idp, first_party=True)
    browser = browser_factory()
    got = obtain(idp, browser, reg)
    client = got.client
    url, _ = client.create_authorization_url(idp.url + "/authorize", code_verifier=new_verifier(), nonce=got.nonce)
    location = browser.http.get(url).headers["Location"]
    assert "error=invalid_request" in location and "code=" not in location


# ---------------------------------------------------------------- bad input
def _authorize_params(reg, **extra):
    from authlib.oauth2.rfc7636 import create_s256_code_challenge

    params = [("response_type", "code"), ("client_id", reg.client_id), ("redirect_uri", reg.redirect_uri),
              ("scope", "openid"), ("nonce", new_verifier()[:10]),
              ("code_challenge", create_s256_code_challenge(new_verifier())), ("code_challenge_method", "S256")]
    return params + list(extra.items())


@pytest.mark.parametrize(
    "mangle",
    [
        lambda p: p + [("state", "a"), ("state", "b")],  # duplicated state
        lambda p: p + [("nonce", "again")],  # duplicated nonce
        lambda p: p + [("redirect_uri", p[2][1])],  # duplicated redirect_uri
        lambda p: p + [("state", "x" * 6000)],  # huge
        lambda p: [(k, v) for k, v in p if k != "client_id"],  # missing client
        lambda p: [("client_id", "x" * 5000)],  # absurd client id
        lambda p: p + [("state", "a\x00b")],  # NUL
        lambda p: [(k, "\ud800" if k == "client_id" else v) for k, v in p],  # lone surrogate
    ],
)
def test_malformed_authorization_requests_get_a_page_not_a_500(idp, mangle):
    reg = register(idp)
    params = mangle(_authorize_params(reg))
    query = httpx.QueryParams([(k, v.encode("utf-8", "surrogatepass").decode("latin-1")) for k, v in params])
    response = httpx.get(idp.url + "/authorize?" + str(query))
    assert 400 <= response.status_code < 500, response.status_code
    assert "Location" not in response.headers


def test_max_age_and_response_mode_garbage_are_client_errors(idp, browser_factory):
    make_user(idp)
    reg = register(idp, first_party=True)
    browser = browser_factory()
    browser.sign_in()
    for extra in ({"max_age": "-1"}, {"max_age": "ten"}, {"max_age": "9" * 40}, {"response_mode": "fragment"},
                  {"prompt": "none login"}, {"response_mode": "form_post"}):
        response = browser.http.get(idp.url + "/authorize", params=_authorize_params(reg, **extra))
        assert response.status_code == 302, extra
        assert "error=invalid_request" in response.headers["Location"], extra


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"content": b"grant_type=authorization_code&grant_type=authorization_code",
         "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"data": {"grant_type": "authorization_code", "code": "x" * 100_000}},
        {"data": {"grant_type": "refresh_token", "refresh_token": "\x00"}},
        {"params": {"grant_type": "client_credentials"}},
        {"data": {"grant_type": "authorization_code", "code": "abc", "code_verifier": "short"}},
        {"content": b"\xff\xfe\xfd", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": b'{"grant_type": "client_credentials"}', "headers": {"Content-Type": "application/json"}},
        {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic !!!notbase64"}},
        {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic " + base64.b64encode(b"\xff:\xfe").decode()}},
        {"data": {"grant_type": "client_credentials"}, "headers": {"Authorization": "Basic " + base64.b64encode(b"x" * 5000 + b":y").decode()}},
    ],
)
def test_malformed_token_requests_get_4xx_json(idp, request_kwargs):
    reg = register(idp)
    kwargs = dict(request_kwargs)
    if "headers" not in kwargs or "Authorization" not in kwargs["headers"]:
        kwargs["auth"] = (reg.client_id, reg.secret)
    response = httpx.post(idp.url + "/token", **kwargs)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json()["error"]
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "bearer",
    [
        "not-a-jwt",
        "a.b.c",
        "eyJhbGciOiJFUzI1NiJ9.e30.",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "x" * 20_000,
        "....",
        "eyJ" + "A" * 5000 + ".e30.sig",
        "W10.W10.W10",  # header is a JSON array
    ],
)
def test_malformed_bearer_tokens_get_401_at_userinfo_and_inactive_at_introspection(idp, bearer):
    reg = register(idp)
    response = httpx.get(idp.url + "/userinfo", headers={"Authorization": "Bearer " + bearer})
    assert response.status_code in (400, 401), response.status_code
    info = httpx.post(idp.url + "/introspect", data={"token": bearer}, auth=(reg.client_id, reg.secret))
    if len(bearer) > 2048:  # beyond any token of ours: refused as a malformed request
        assert info.status_code == 400 and info.json()["error"] == "invalid_request"
    else:
        assert info.status_code == 200 and info.json() == {"active": False}


def test_userinfo_without_or_with_odd_authorization(idp):
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}, {"Authorization": "Bearer a b"}):
        response = httpx.get(idp.url + "/userinfo", headers=headers)
        assert response.status_code in (400, 401), headers
        assert response.headers["Content-Type"].startswith("application/json")


def test_end_session_with_a_garbage_hint_is_a_page_not_a_500(idp):
    for query in ({"id_token_hint": "garbage"}, {"id_token_hint": "a.b.c"}, {"client_id": "x" * 5000},
                  {"post_logout_redirect_uri": "javascript:alert(1)"}):
        response = httpx.get(idp.url + "/end-session", params=query)
        assert response.status_code in (200, 400), (query, response.status_code)
        assert "Location" not in response.headers


@pytest.mark.parametrize("name", ["response_type", "client_id", "scope", "state", "code_challenge_method", "prompt"])
@pytest.mark.parametrize("value", ["code\u202e", "c\u00f3de", "code\x07"])
def test_non_ascii_protocol_parameters_get_a_page_not_a_500(idp, name, value):
    """RFC 6749 Appendix A: these are printable ASCII. Authlib echoes a bad response_type
    into its error description and raised on such characters (a 500) before this check."""
    reg = register(idp)
    params = [(k, value if k == name else v) for k, v in _authorize_params(reg, state="s", prompt="login")]
    response = httpx.get(idp.url + "/authorize", params=params)
    assert response.status_code == 400, response.status_code
    assert "Location" not in response.headers
    assert "printable ASCII" in response.text
