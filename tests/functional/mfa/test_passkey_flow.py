"""Passkeys through the HTTP endpoints with a software authenticator (issue 4, Done 1-2)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from idp import assurance
from idp.models import AuditEvent
from tests.functional.mfa.flows import (
    authenticator,
    live_sessions,
    page_csrf,
    passkey_second_factor,
    passkey_sign_in,
    password_session,
    post_json,
    prove_email,
    register_passkey,
    text,
)

EMAIL = "user@example.com"


@pytest.fixture
def enrolled(app, client, make_user, outbox):  # type: ignore[no-untyped-def]
    """An account whose first factor is a passkey, registered after the mailed proof."""
    make_user(EMAIL)
    password_session(client, EMAIL)
    prove_email(client, outbox, EMAIL)
    key = authenticator()
    answer = register_passkey(client, key)
    assert answer["redirect"].startswith("/mfa/recovery-codes/first")
    assert client.get(answer["redirect"]).status_code == 200  # the codes, once
    assert client.get("/account").status_code == 200
    return key


def test_usernameless_passkey_sign_in_is_phishing_resistant(app, enrolled):
    browser = app.test_client()
    response = passkey_sign_in(browser, enrolled)
    assert response.status_code == 200 and response.get_json() == {"redirect": "/account"}
    assert browser.get("/account").status_code == 200
    sessions = [s for s in live_sessions(app, EMAIL) if "pwd" not in s.amr]
    assert [sorted(s.amr) for s in sessions] == [["hwk", "user"]]
    assert assurance.acr_for(sessions[0].amr) == assurance.ACR_PHR


def test_passkey_as_second_factor_after_the_password(app, enrolled):
    browser = app.test_client()
    password_session(browser, EMAIL)
    assert browser.get("/account").status_code == 302
    page = browser.get("/mfa?next=/account")
    assert 'data-testid="passkey-second-factor"' in page.get_data(as_text=True)
    response = passkey_second_factor(browser, enrolled)
    assert response.status_code == 200 and response.get_json()["redirect"] == "/account"
    assert browser.get("/account").status_code == 200
    newest = max(live_sessions(app, EMAIL), key=lambda s: s.created_at)
    assert set(newest.amr) == {"pwd", "hwk", "user"}


def test_the_session_cookie_is_replaced_when_a_factor_is_added(app, enrolled):
    browser = app.test_client()
    password_session(browser, EMAIL)
    before = browser.get_cookie("idp_sso").value
    assert passkey_second_factor(browser, enrolled).status_code == 200
    after = browser.get_cookie("idp_sso").value
    assert before != after
    stale = app.test_client()
    stale.set_cookie("idp_sso", before)
    assert stale.get("/account").headers["Location"].startswith("/login")


@pytest.mark.parametrize(
    "tamper",
    [
        {"origin": "https://idp.example.evil"},
        {"rp_id": "evil.example"},
        {"sign_count": 0},
    ],
    ids=["wrong-origin", "wrong-rp-id", "sign-count-regression"],
)
def test_tampered_assertions_are_refused_at_the_endpoints(app, enrolled, tamper):
    first = app.test_client()
    assert passkey_sign_in(first, enrolled, sign_count=5).status_code == 200
    browser = app.test_client()
    response = passkey_sign_in(browser, enrolled, **tamper)
    assert response.status_code == 400
    assert response.get_json()["error"] == "passkey_rejected"
    assert browser.get("/account").status_code == 302


def test_replayed_sign_in_response_is_refused(app, enrolled):
    browser = app.test_client()
    token = page_csrf(browser)
    options = post_json(browser, "/passkey/signin/options", {}, csrf=token).get_json()["publicKey"]
    assertion = enrolled.get(options)
    body = {"credential": assertion, "next": "/account"}
    assert post_json(browser, "/passkey/signin/verify", body, csrf=token).status_code == 200
    attacker = app.test_client()
    attacker_token = page_csrf(attacker)
    post_json(attacker, "/passkey/signin/options", {}, csrf=attacker_token)  # a challenge of its own
    assert post_json(attacker, "/passkey/signin/verify", body, csrf=attacker_token).status_code == 400
    # Same browser again: its challenge was used up.
    token = page_csrf(browser)
    assert post_json(browser, "/passkey/signin/verify", body, csrf=token).status_code == 400


def test_removed_passkey_no_longer_signs_in(app, client, enrolled):
    factor_id = _factor_ids(client, "passkey")[0]
    key2 = authenticator()
    # Another factor to remain, and a fresh re-authentication with it.
    register_passkey(client, key2, name="phone")
    assert passkey_second_factor(client, key2, credential=key2.credentials[0]).status_code == 200
    response = client.post(f"/mfa/factors/passkey/{factor_id}/remove", data={"csrf_token": page_csrf(client)})
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    browser = app.test_client()
    refused = passkey_sign_in(browser, enrolled, credential=enrolled.credentials[0])
    assert refused.status_code == 400
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        events = list(db.scalars(select(AuditEvent.event)))
    assert "mfa.factor_removed" in events and "passkey.failed" in events


def test_removing_a_factor_needs_a_recent_check_with_another_factor(app, client, enrolled, outbox):
    key2 = authenticator()
    register_passkey(client, key2, name="phone")
    first, second = _factor_ids(client, "passkey")
    # The session's last factor was the second key (its registration): removing it is refused.
    response = client.post(f"/mfa/factors/passkey/{second}/remove", data={"csrf_token": page_csrf(client)})
    assert response.status_code == 302 and response.headers["Location"].startswith("/mfa?")
    assert len(_factor_ids(client, "passkey")) == 2
    # Re-authenticate with the first key, then the second can go.
    assert passkey_second_factor(client, enrolled, credential=enrolled.credentials[0]).status_code == 200
    response = client.post(f"/mfa/factors/passkey/{second}/remove", data={"csrf_token": page_csrf(client)})
    assert response.headers["Location"] == "/account"
    assert _factor_ids(client, "passkey") == [first]
    # The last factor cannot be removed under "required".
    response = client.post(f"/mfa/factors/passkey/{first}/remove", data={"csrf_token": page_csrf(client)})
    assert response.status_code in (302, 400)
    assert _factor_ids(client, "passkey") == [first]
    assert any("sign-in method changed" in m["Subject"] for m in outbox.to(EMAIL))


def test_rename_is_audited_and_bounded(app, client, enrolled):
    factor_id = _factor_ids(client, "passkey")[0]
    response = client.post(f"/mfa/factors/passkey/{factor_id}/rename",
                           data={"csrf_token": page_csrf(client), "name": "  Work   laptop " + "x" * 100})
    assert response.status_code == 302
    page = text(client.get("/account"))
    assert "Work laptop xxx" in page and "x" * 70 not in page
    assert client.post("/mfa/factors/passkey/nope/rename", data={"csrf_token": page_csrf(client)}).status_code == 404
    assert client.post("/mfa/factors/sms/x/rename", data={"csrf_token": page_csrf(client)}).status_code == 404
    long_id = "a" * 5000
    assert client.post(f"/mfa/factors/totp/{long_id}/remove", data={"csrf_token": page_csrf(client)}).status_code == 404


BAD_BODIES = [
    ("malformed-json", b"{not json", "application/json"),
    ("json-array", b"[1, 2]", "application/json"),
    ("json-string", b'"credential"', "application/json"),
    ("no-credential", b"{}", "application/json"),
    ("credential-not-object", b'{"credential": "abc"}', "application/json"),
    ("bogus-base64", json.dumps({"credential": {"id": "%%%", "rawId": "%%%", "type": "public-key", "response": {
        "clientDataJSON": "***", "attestationObject": "***", "authenticatorData": "***", "signature": "***"}}}).encode(),
     "application/json"),
    ("invalid-utf8", b'{"credential": "\xff\xfe"}', "application/json"),
    ("deep-nesting", b"[" * 50000 + b"]" * 50000, "application/json"),
    ("form-encoded", b"credential=x", "application/x-www-form-urlencoded"),
    ("huge", b'{"credential": "' + b"A" * (200 * 1024) + b'"}', "application/json"),
    ("unicode-junk", json.dumps({"credential": {"id": "\u202e\u0000", "rawId": "\u0661", "type": "public-key",
                                                "response": {"clientDataJSON": "\ud7ff"}}}).encode(), "application/json"),
]


@pytest.mark.parametrize("name,raw,content_type", BAD_BODIES, ids=[b[0] for b in BAD_BODIES])
@pytest.mark.parametrize("path", ["/passkey/signin/verify", "/mfa/passkey/verify", "/mfa/passkeys/verify"])
def test_bad_input_to_passkey_endpoints_gets_a_4xx(app, client, enrolled, path, name, raw, content_type):
    token = page_csrf(client)
    options_path = {"/passkey/signin/verify": "/passkey/signin/options", "/mfa/passkey/verify": "/mfa/passkey/options",
                    "/mfa/passkeys/verify": "/mfa/passkeys/options"}[path]
    post_json(client, options_path, {}, csrf=token)
    response = post_json(client, path, None, csrf=token, raw=raw, content_type=content_type)
    assert 400 <= response.status_code < 500, (name, response.status_code)
    assert response.is_json


def test_json_endpoints_need_csrf_and_a_session(app, enrolled):
    stranger = app.test_client()
    assert stranger.post("/passkey/signin/options", json={}).status_code == 400  # no CSRF token
    token = page_csrf(stranger)
    for path in ("/mfa/passkey/options", "/mfa/passkeys/options", "/mfa/passkeys/verify"):
        response = post_json(stranger, path, {}, csrf=token)
        assert response.status_code in (302, 401), (path, response.status_code)


def _factor_ids(client, kind: str) -> list[str]:  # type: ignore[no-untyped-def]
    import re

    page = client.get("/account").get_data(as_text=True)
    return re.findall(rf'data-kind="{kind}" data-factor-id="([^"]+)"', page)
