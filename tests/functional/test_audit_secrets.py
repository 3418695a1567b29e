"""No password, code, token or secret reaches the audit log or the application log.

The flows run for real (a live server and Authlib's client for sign-up, sign-in, a failed
sign-in, the sign-in link and the OAuth code, refresh and revocation flows; the test
client for TOTP enrolment and a TOTP sign-in) while every logger of the process records
at DEBUG. Then every secret the test handled is searched for in the audit table (as
exported) and in what was logged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from idp.audit.verify import export_lines, verify_chain
from tests.fixtures import LiveServer
from tests.functional.mfa.flows import enrol_totp, password_session, submit_code, totp_code
from tests.functional.oauth.conftest import Browser, code_of, obtain, register, start_server

SIGNUP_PASSWORD = "plum tarragon velvet 4417 quartz"
WRONG_PASSWORD = "plum tarragon velvet 4417 quarts"
TOTP_PASSWORD = "correct horse battery staple"  # tests.functional.mfa.flows.PASSWORD
EMAIL = "signup@example.com"
TOTP_EMAIL = "totp@example.com"

# The relying party's own HTTP client logs the URLs it calls; that is the test's log, not
# the provider's. The access log ("werkzeug" here, granian.access in production) is
# checked on its own below.
CLIENT_SIDE = ("httpx", "httpcore", "urllib3", "authlib.integrations.requests_client")
ACCESS_LOG = ("werkzeug", "granian.access")


@pytest.fixture
def live(database_url: str, redis_url: str | None, tmp_path: Path, caplog: pytest.LogCaptureFixture
         ) -> Iterator[LiveServer]:
    caplog.set_level(logging.DEBUG)  # the root: every logger of the process, from the start
    server, stop = start_server(database_url, redis_url, tmp_path)
    try:
        yield server
    finally:
        stop()


def token_of(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def sign_up_and_verify(live: LiveServer, browser: Browser) -> str:
    page = browser.http.get("/register")
    response = browser.http.post("/register", data={"csrf_token": browser.csrf(page.text), "username": EMAIL,
                                                    "password": SIGNUP_PASSWORD})
    assert response.status_code == 200, response.status_code
    link = live.outbox.last_link(EMAIL, "/verify-email")
    page = browser.http.get(link)
    assert page.status_code == 200
    response = browser.http.post("/verify-email", data={"csrf_token": browser.csrf(page.text),
                                                        "token": token_of(link)})
    assert response.status_code == 302, response.status_code
    return token_of(link)


def sign_in_by_link(live: LiveServer, browser: Browser) -> str:
    page = browser.http.get("/login/link")
    browser.http.post("/login/link", data={"csrf_token": browser.csrf(page.text), "username": EMAIL})
    link = live.outbox.last_link(EMAIL, "/login/link/confirm")
    page = browser.http.get(link)
    assert page.status_code == 200
    response = browser.http.post("/login/link/confirm", data={"csrf_token": browser.csrf(page.text),
                                                              "token": token_of(link)})
    assert response.status_code == 302, response.status_code
    return token_of(link)


def totp_flow(app, outbox) -> list[str]:  # type: ignore[no-untyped-def]
    """Enrol TOTP (mailed proof, secret, recovery codes), then sign in with a code."""
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        registry.services(db).accounts.create_by_operator(TOTP_EMAIL, TOTP_PASSWORD, verified=True)
        db.commit()
    client = app.test_client()
    password_session(client, TOTP_EMAIL)
    secret, recovery_codes = enrol_totp(client, outbox, TOTP_EMAIL)
    proof = token_of(outbox.last_link(TOTP_EMAIL, "/mfa/email-proof"))
    again = app.test_client()
    password_session(again, TOTP_EMAIL)
    code = totp_code(secret, steps=1)  # the enrolment used this step's code; a code is single use
    response = submit_code(again, code)
    assert response.status_code == 302 and response.headers["Location"] == "/account", response.status_code
    return [secret, code, proof, *recovery_codes]


def oauth_flow(live: LiveServer, browser: Browser) -> list[str]:
    reg = register(live)
    obtained = obtain(live, browser, reg)
    token = obtained.token
    refreshed = obtained.client.refresh_token(live.url + "/token", refresh_token=token["refresh_token"])
    revoked = obtained.client.revoke_token(live.url + "/revoke", token=refreshed["refresh_token"],
                                           token_type_hint="refresh_token")
    assert revoked.status_code == 200
    secrets = [reg.secret, code_of(obtained.location), obtained.verifier]
    for issued in (token, refreshed):
        secrets += [issued["access_token"], issued["refresh_token"], issued.get("id_token")]
    return [s for s in secrets if s]


def fragments(secret: str) -> list[str]:
    """The secret, and pieces of it long enough to matter (a log that prints a prefix
    leaks too). A JWT's header is the same for every token: its signature stands in."""
    if secret.count(".") == 2 and secret.startswith("eyJ"):
        return [secret, secret.rsplit(".", 1)[1]]
    if len(secret) >= 20:
        return [secret, secret[:12], secret[-12:]]
    return [secret]


def leaks(secrets: list[str], texts: list[str]) -> list[tuple[str, str]]:
    found = []
    for secret in secrets:
        for piece in fragments(secret):
            # Short numeric codes: whole tokens only, or every timestamp would be a suspect.
            pattern = re.compile(rf"(?<![0-9A-Za-z]){re.escape(piece)}(?![0-9A-Za-z])") if len(piece) < 12 else None
            for text in texts:
                if (pattern.search(text) if pattern else piece in text):
                    found.append((piece, text[:300]))
    return found


def test_no_secret_reaches_the_audit_log_or_the_application_log(live, app, outbox, caplog):
    browser = Browser(live)
    try:
        verification = sign_up_and_verify(live, browser)
        assert browser.sign_in(EMAIL, WRONG_PASSWORD).status_code == 401
        assert browser.sign_in(EMAIL, SIGNUP_PASSWORD).status_code == 302
        link = sign_in_by_link(live, browser)
        oauth = oauth_flow(live, browser)
    finally:
        browser.close()
    totp = totp_flow(app, outbox)
    secrets = [SIGNUP_PASSWORD, WRONG_PASSWORD, TOTP_PASSWORD, verification, link, *oauth, *totp]
    assert len(secrets) >= 25

    registry = live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        audit = list(export_lines(db))
        assert verify_chain(db).finding is None
    events = {line.split('"event":"', 1)[1].split('"', 1)[0] for line in audit}
    # The flows above did write to the log: what is searched is not empty.
    assert {"signin.failed", "mfa.verified"} <= events and len(audit) >= 15, events

    records = [r for r in caplog.records if not r.name.startswith(CLIENT_SIDE + ACCESS_LOG)]
    logged = [f"{r.name} {r.levelname} {r.getMessage()} {r.exc_text or ''}" for r in records]
    # Capture works for the server's threads: their access log lines are there.
    assert any(r.name.startswith(ACCESS_LOG) for r in caplog.records)

    assert leaks(secrets, audit) == []
    assert leaks(secrets, logged) == []


# The production access log (Granian under `idp serve`) leaves query strings and the
# Referer out, so mailed one-time tokens are not logged: tests/functional/test_serve.py.
