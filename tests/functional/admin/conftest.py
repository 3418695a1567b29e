"""Admin-API tests: real tokens from the real provider, through the Flask test client.

An administrator's token is obtained as an admin console would: a first-party
confidential client registered with the admin scopes, an ``is_admin`` account whose SSO
session has the amr a passkey sign-in leaves (``hwk`` + ``user``: acr phr,
idp/assurance.py), then /authorize and /token with ``resource=<issuer>/admin`` (RFC 8707)
and PKCE S256.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.fixtures import start_session

ADMIN_EMAIL = "admin@example.com"
USER_EMAIL = "user@example.com"
PASSWORD = "correct horse battery staple"
REDIRECT = "https://console.example/callback"
ALL_SCOPES = "admin:users admin:clients admin:keys admin:audit"
PASSKEY = ("hwk", "user")  # usernameless passkey sign-in: acr urn:idp:acr:phr
PASSWORD_AND_TOTP = ("pwd", "otp")  # acr urn:idp:acr:mfa


@dataclass
class Registered:
    client_id: str
    secret: str | None


def register_client(app: Flask, *, name: str = "Admin console", scope: str = "openid " + ALL_SCOPES,
                    **kwargs: Any) -> Registered:
    registry = app.extensions["idp"]
    kwargs.setdefault("redirect_uris", (REDIRECT,))
    kwargs.setdefault("first_party", True)
    with registry.sessionmaker() as db:
        client, secret = registry.services(db).clients.create(name=name, scope=scope, **kwargs)
        db.commit()
        return Registered(client.id, secret)


def make_account(app: Flask, email: str, *, admin: bool = False, password: str | None = PASSWORD) -> str:
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        services = registry.services(db)
        user = services.accounts.create_by_operator(email, password, verified=True)
        if admin:
            services.account_status.set_admin(user, True, actor=None)
        db.commit()
        return user.id


def basic(reg: Registered) -> dict[str, str]:
    raw = f"{reg.client_id}:{reg.secret}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


def code_flow(app: Flask, browser: FlaskClient, reg: Registered, *, scope: str,
              resource: str | None) -> dict[str, Any]:
    """/authorize in the signed-in ``browser``, then /token as the client: the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    params = {
        "response_type": "code", "client_id": reg.client_id, "redirect_uri": REDIRECT, "scope": scope,
        "state": secrets.token_urlsafe(8), "nonce": secrets.token_urlsafe(8), "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    if resource is not None:
        params["resource"] = resource
    response = browser.get("/authorize", query_string=params)
    location = response.headers.get("Location", "")
    assert response.status_code == 302 and location.startswith(REDIRECT), (response.status_code, location)
    query = parse_qs(urlsplit(location).query)
    assert "code" in query, query
    form = {"grant_type": "authorization_code", "code": query["code"][0], "redirect_uri": REDIRECT,
            "code_verifier": verifier}
    if resource is not None:
        form["resource"] = resource
    token = app.test_client().post("/token", data=form, headers=basic(reg))
    assert token.status_code == 200, token.get_data(as_text=True)
    return token.get_json()  # type: ignore[no-any-return]


class Console:
    """What the tests drive: the app, the admin console client, and token helpers."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.settings = app.extensions["idp"].settings
        self.audience = self.settings.admin_audience
        self.reg = register_client(app)
        self.admin_id = make_account(app, ADMIN_EMAIL, admin=True)
        self.http = app.test_client()

    def tokens(self, *, email: str = ADMIN_EMAIL, amr: tuple[str, ...] = PASSKEY, scope: str = ALL_SCOPES,
               resource: str | None = "admin", reg: Registered | None = None) -> dict[str, Any]:
        """A fresh sign-in (a new browser) and the token response of the code flow."""
        browser = self.app.test_client()
        start_session(self.app, browser, email, amr=amr)
        target = self.audience if resource == "admin" else resource
        return code_flow(self.app, browser, reg or self.reg, scope="openid " + scope, resource=target)

    def token(self, **kwargs: Any) -> str:
        return self.tokens(**kwargs)["access_token"]  # type: ignore[no-any-return]

    def call(self, method: str, path: str, token: str | None, **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        return self.http.open(path, method=method, headers=headers, **kwargs)


@pytest.fixture
def console(app: Flask) -> Console:
    return Console(app)


def challenge_of(response) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The attributes of a ``WWW-Authenticate: Bearer k="v", ...`` header."""
    import re

    header = response.headers.get("WWW-Authenticate", "")
    assert header.startswith("Bearer"), header
    return dict(re.findall(r'(\w+)="([^"]*)"', header))
