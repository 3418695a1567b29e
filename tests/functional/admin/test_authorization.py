"""Who may call the admin API, each refusal named after the attack it stops.

Tokens come from the real /authorize and /token (conftest.py). The API accepts only a
bearer token for its own audience, unrevoked, issued to an active administrator whose
sign-in was phishing-resistant, with the scope of the area called.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.functional.admin.conftest import (
    ADMIN_EMAIL,
    ALL_SCOPES,
    PASSWORD_AND_TOTP,
    USER_EMAIL,
    basic,
    challenge_of,
    make_account,
    register_client,
)

AREAS = [
    ("admin:users", "GET", "/admin/users?email=admin@example.com"),
    ("admin:clients", "GET", "/admin/clients"),
    ("admin:keys", "GET", "/admin/keys"),
    ("admin:audit", "GET", "/admin/audit/verify"),
]


def _refused(response, status: int, error: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    assert response.get_json()["error"] == error
    assert response.headers["Cache-Control"] == "no-store"
    challenge = challenge_of(response)
    assert challenge.get("error") == error
    return challenge


@pytest.mark.parametrize(("scope", "method", "path"), AREAS, ids=[a[0] for a in AREAS])
def test_each_area_answers_a_token_with_its_scope_and_refuses_one_without(console, scope, method, path):
    allowed = console.call(method, path, console.token(scope=scope))
    assert allowed.status_code == 200, allowed.get_data(as_text=True)
    assert allowed.headers["Cache-Control"] == "no-store"

    others = " ".join(s for s in ALL_SCOPES.split() if s != scope)
    refused = console.call(method, path, console.token(scope=others))
    challenge = _refused(refused, 403, "insufficient_scope")
    assert challenge["scope"] == scope


def test_a_person_who_is_not_an_administrator_is_refused_whatever_the_scopes(console):
    make_account(console.app, USER_EMAIL)
    token = console.token(email=USER_EMAIL)  # the console client may ask for the scopes
    for _scope, method, path in AREAS:
        _refused(console.call(method, path, token), 403, "insufficient_scope")


def test_an_admin_signed_in_with_password_and_totp_is_sent_to_step_up_to_a_passkey(console):
    # The attacker of DESIGN.md has the password and can phish a TOTP code; not a passkey.
    token = console.token(amr=PASSWORD_AND_TOTP)
    response = console.call("GET", "/admin/keys", token)
    challenge = _refused(response, 401, "insufficient_user_authentication")
    assert challenge["acr_values"] == "urn:idp:acr:phr"  # RFC 9470 section 3


def test_a_client_credentials_token_for_the_admin_api_is_refused(console):
    service = register_client(console.app, name="Batch job", scope=ALL_SCOPES, redirect_uris=(),
                              grant_types=["client_credentials"], first_party=False)
    issued = console.http.post("/token", headers=basic(service), data={
        "grant_type": "client_credentials", "scope": "admin:users", "resource": console.audience})
    assert issued.status_code == 200, issued.get_data(as_text=True)
    token = issued.get_json()["access_token"]
    _refused(console.call("GET", "/admin/users?email=admin@example.com", token), 401, "invalid_token")


def test_a_token_for_another_audience_is_refused(console):
    # No resource: the audience is the console client itself.
    _refused(console.call("GET", "/admin/keys", console.token(resource=None)), 401, "invalid_token")
    # A token the console got for the wallet API cannot be replayed at the admin API.
    wallet = "https://wallet.example/api"
    register_client(console.app, name="Wallet API", scope="wallet:pay", redirect_uris=(),
                    grant_types=["client_credentials"], resource_uri=wallet, first_party=False)
    _refused(console.call("GET", "/admin/keys", console.token(resource=wallet)), 401, "invalid_token")


def test_a_revoked_token_is_refused(console):
    token = console.token()
    assert console.call("GET", "/admin/keys", token).status_code == 200
    revoked = console.http.post("/revoke", data={"token": token}, headers=basic(console.reg))
    assert revoked.status_code == 200
    _refused(console.call("GET", "/admin/keys", token), 401, "invalid_token")


def test_revoking_admin_rights_stops_tokens_already_issued(console):
    token = console.token()
    assert console.call("GET", "/admin/keys", token).status_code == 200
    registry = console.app.extensions["idp"]
    with registry.sessionmaker() as db:
        services = registry.services(db)
        services.account_status.set_admin(services.accounts.get(console.admin_id), False, actor=None)
        db.commit()
    _refused(console.call("GET", "/admin/keys", token), 403, "insufficient_scope")


def test_a_token_of_a_disabled_console_client_is_refused(console):
    token = console.token()
    other_admin = console.token()  # the same console: disabling it kills both
    response = console.call("POST", f"/admin/clients/{console.reg.client_id}/disable", other_admin)
    assert response.status_code == 200, response.get_data(as_text=True)
    _refused(console.call("GET", "/admin/keys", token), 401, "invalid_token")


def test_a_session_cookie_alone_gets_nothing(console):
    # The admin's browser, signed in with a passkey: no bearer token, no access (no CSRF).
    from tests.fixtures import start_session

    browser = console.app.test_client()
    start_session(console.app, browser, ADMIN_EMAIL, amr=("hwk", "user"))
    response = browser.get("/admin/keys")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == f'Bearer realm="{console.audience}"'  # RFC 6750 section 3.1
    assert response.get_json()["error"] == "unauthorized"


def test_a_token_in_the_query_string_or_form_is_refused_even_when_valid(console):
    token = console.token()
    assert console.call("GET", f"/admin/keys?access_token={token}", None).status_code == 400
    response = console.call("POST", "/admin/keys/rotate", None, data={"access_token": token})
    _refused(response, 400, "invalid_request")


def _forged_none_alg(token: str) -> str:
    header, payload, _sig = token.split(".")
    forged = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "at+jwt"}).encode()).rstrip(b"=").decode()
    return f"{forged}.{payload}."


def _with_claims(token: str, **changes: object) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims.update(changes)
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{body}.{signature}"


def test_forged_and_malformed_tokens_are_invalid_token(console):
    issued = console.tokens(scope="admin:users")
    token = issued["access_token"]
    cases = [
        issued["id_token"],  # signed by us, for the console, but an ID token (typ JWT), not an access token
        issued["refresh_token"],
        _forged_none_alg(token),
        _with_claims(token, scope=ALL_SCOPES),  # widened scope, original signature
        _with_claims(token, acr="urn:idp:acr:phr", sub=console.admin_id + "x"),
        "x.y.z",
        "a" * 10000,
        "é",
    ]
    for value in cases:
        response = console.call("GET", "/admin/keys", value)
        assert response.status_code in (400, 401), (value[:20], response.status_code)
        assert response.get_json()["error"] in ("invalid_token", "invalid_request")
        assert "WWW-Authenticate" in response.headers
    for header in (f"Basic {token}", f"Bearer {token} {token}", "Bearer", f"bearer  {token}x"):
        response = console.http.get("/admin/keys", headers={"Authorization": header})
        _refused(response, 401, "invalid_token")
