"""Steps a person (or an attacker) takes through the MFA pages, via the Flask test client."""

from __future__ import annotations

import base64
import datetime as dt
import html
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
from flask.testing import FlaskClient
from sqlalchemy import select

from idp.models import SsoSession
from tests.fixtures import csrf_from, get_csrf, sign_in
from tests.softauthn import SoftAuthenticator

PASSWORD = "correct horse battery staple"
ISSUER = "http://localhost"
SECRET_RE = re.compile(r'data-testid="totp-secret">([A-Z2-7]+)<')
CODES_RE = re.compile(r"<li><code>([a-z2-7-]{19})</code></li>")


def authenticator() -> SoftAuthenticator:
    return SoftAuthenticator(origin=ISSUER, rp_id="localhost")


def totp_code(secret: str, *, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30 * steps))


def wrong_code(secret: str) -> str:
    window = {totp_code(secret, steps=s) for s in (-1, 0, 1, 2)}
    return next(c for c in ("000000", "111111", "222222", "333333", "444444") if c not in window)


def post_json(client: FlaskClient, path: str, body: Any, *, csrf: str, raw: bytes | None = None,
              content_type: str = "application/json"):  # type: ignore[no-untyped-def]
    data = raw if raw is not None else json.dumps(body).encode()
    return client.post(path, data=data, content_type=content_type,
                       headers={"X-CSRFToken": csrf, "Accept": "application/json"})


def page_csrf(client: FlaskClient) -> str:
    return get_csrf(client, "/login")


def password_session(client: FlaskClient, email: str) -> None:
    response = sign_in(client, email, PASSWORD)
    assert response.status_code == 302, response.status_code


def prove_email(client: FlaskClient, outbox, email: str, *, next_url: str = "/account") -> None:  # type: ignore[no-untyped-def]
    token = get_csrf(client, f"/mfa/setup?next={next_url}")
    response = client.post("/mfa/setup/email", data={"csrf_token": token, "next": next_url})
    assert response.status_code == 200, response.status_code
    link = outbox.last_link(email, "/mfa/email-proof")
    assert link.startswith(ISSUER + "/mfa/email-proof?token=")
    path = link.removeprefix(ISSUER)
    proof = parse_qs(urlsplit(path).query)["token"][0]
    page = client.get(path)
    assert page.status_code == 200
    response = client.post("/mfa/email-proof", data={"csrf_token": csrf_from(page.get_data(as_text=True)),
                                                     "token": proof, "next": next_url})
    assert response.status_code == 302 and response.headers["Location"].startswith("/mfa/setup"), response.status_code


def start_totp(client: FlaskClient) -> str:
    page = client.get("/mfa/totp/new?next=/account")
    assert page.status_code == 200, page.status_code
    text = page.get_data(as_text=True)
    qr = re.search(r'src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', text)
    assert qr and b'xmlns="http://www.w3.org/2000/svg"' in base64.b64decode(qr.group(1))
    match = SECRET_RE.search(text)
    assert match
    return match.group(1)


def confirm_totp(client: FlaskClient, code: str):  # type: ignore[no-untyped-def]
    return client.post("/mfa/totp/new", data={"csrf_token": page_csrf(client), "code": code, "next": "/account", "name": "phone"})


def enrol_totp(client: FlaskClient, outbox, email: str) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """Password session → mailed proof → TOTP → recovery codes; returns (secret, codes)."""
    prove_email(client, outbox, email)
    secret = start_totp(client)
    response = confirm_totp(client, totp_code(secret))
    assert response.status_code == 302, response.status_code
    page = client.get(response.headers["Location"])
    assert page.status_code == 200
    codes = CODES_RE.findall(page.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def register_passkey(client: FlaskClient, key: SoftAuthenticator, *, name: str = "laptop") -> dict[str, Any]:
    token = page_csrf(client)
    options = post_json(client, "/mfa/passkeys/options", {}, csrf=token)
    assert options.status_code == 200, options.get_data(as_text=True)
    credential = key.create(options.get_json()["publicKey"])
    response = post_json(client, "/mfa/passkeys/verify", {"credential": credential, "name": name, "next": "/account"},
                         csrf=token)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def passkey_second_factor(client: FlaskClient, key: SoftAuthenticator, **tamper: Any):  # type: ignore[no-untyped-def]
    token = page_csrf(client)
    options = post_json(client, "/mfa/passkey/options", {}, csrf=token)
    assert options.status_code == 200, options.get_data(as_text=True)
    assertion = key.get(options.get_json()["publicKey"], **tamper)
    return post_json(client, "/mfa/passkey/verify", {"credential": assertion, "next": "/account"}, csrf=token)


def passkey_sign_in(client: FlaskClient, key: SoftAuthenticator, **tamper: Any):  # type: ignore[no-untyped-def]
    token = page_csrf(client)
    options = post_json(client, "/passkey/signin/options", {}, csrf=token)
    assert options.status_code == 200
    assertion = key.get(options.get_json()["publicKey"], **tamper)
    return post_json(client, "/passkey/signin/verify", {"credential": assertion, "next": "/account"}, csrf=token)


def submit_code(client: FlaskClient, code: str, *, method: str = "totp", next_url: str = "/account",
                **extra: str):  # type: ignore[no-untyped-def]
    data = {"csrf_token": page_csrf(client), "method": method, "code": code, "next": next_url, **extra}
    return client.post("/mfa", data=data)


def live_sessions(app, email: str) -> list[SsoSession]:  # type: ignore[no-untyped-def]
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        user = registry.services(db).accounts.by_email(email)
        return list(db.scalars(select(SsoSession).where(SsoSession.user_id == user.id,
                                                        SsoSession.ended_at.is_(None))))


def text(response) -> str:  # type: ignore[no-untyped-def]
    return html.unescape(response.get_data(as_text=True))
