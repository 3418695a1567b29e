"""Chromium runs sign-in, consent and the code flow end to end; prompt=none without a
session returns login_required to the client (issue 3, done-when 3).

The relying party is a tiny HTTP server on 127.0.0.1 that records what reaches its
redirect URI; Authlib's OAuth client then redeems the code like a real RP would.
"""

from __future__ import annotations

import http.server
import secrets
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.functional.oauth.conftest import (
    PASSWORD,
    make_user,
    register,
    rp,
    start_server,
)


class _Callback(http.server.BaseHTTPRequestHandler):
    hits: list[str]

    def do_GET(self) -> None:
        if self.path.startswith("/callback"):  # not /favicon.ico
            self.hits.append(self.path)
        body = b"<!doctype html><title>RP</title><p id=rp>relying party</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def relying_party() -> Iterator[tuple[str, list[str]]]:
    hits: list[str] = []
    handler = type("Handler", (_Callback,), {"hits": hits})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/callback", hits
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def idp(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    live, stop = start_server(database_url, redis_url, tmp_path)
    yield live
    stop()


def _wait_for_rp(browser, hits: list[str]) -> dict[str, str]:
    WebDriverWait(browser, 10).until(lambda _: hits)
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.ID, "rp")))
    return {k: v[0] for k, v in parse_qs(urlsplit(hits[-1]).query).items()}


def _csp_violations(browser) -> list[str]:  # type: ignore[no-untyped-def]
    return [e["message"] for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]


def _prove_new_device(browser, idp, email: str) -> None:  # type: ignore[no-untyped-def]
    """A fresh browser with only a password owes a second proof (issue 6): the mailed link."""
    WebDriverWait(browser, 10).until(lambda b: urlsplit(b.current_url).path == "/login/new-device")
    browser.find_element(By.CSS_SELECTOR, "form[action='/login/new-device'] button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda _: idp.outbox.to(email) and any(
        "/login/link/confirm" in m.get_body(preferencelist=("plain",)).get_content() for m in idp.outbox.to(email)))
    browser.get(idp.outbox.last_link(email, "/login/link/confirm"))
    browser.find_element(By.CSS_SELECTOR, "form[action^='/login/link/confirm'] button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda b: urlsplit(b.current_url).path != "/login/link/confirm")


@pytest.mark.parametrize("first_party", [False, True], ids=["third-party-with-consent", "first-party"])
def test_sign_in_consent_and_code_flow_in_chromium(browser, idp, relying_party, first_party):
    redirect_uri, hits = relying_party
    user_id = make_user(idp)
    reg = register(idp, redirect_uris=(redirect_uri,), name="Coffee Shop", first_party=first_party)
    client = rp(idp, reg)
    verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(12)
    url, state = client.create_authorization_url(idp.url + "/authorize", code_verifier=verifier, nonce=nonce)

    browser.get(url)
    WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, "input[name=username]")))
    browser.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys("user@example.com")
    browser.find_element(By.CSS_SELECTOR, "input[name=password]").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _prove_new_device(browser, idp, "user@example.com")
    browser.get(url)  # the mailed link lands on the account page; the client's request resumes
    if not first_party:
        allow = WebDriverWait(browser, 10).until(
            ec.element_to_be_clickable((By.CSS_SELECTOR, "button[name=decision][value=allow]"))
        )
        assert "Coffee Shop" in browser.find_element(By.CSS_SELECTOR, "[data-testid=client-name]").text
        allow.click()

    params = _wait_for_rp(browser, hits)
    assert params["state"] == state and params["iss"] == idp.url and "code" in params
    assert _csp_violations(browser) == []

    token = client.fetch_token(
        idp.url + "/token", authorization_response=redirect_uri + "?" + urlsplit(hits[-1]).query, code_verifier=verifier
    )
    keys = KeySet.import_key_set(httpx.get(idp.url + "/jwks.json").json())
    claims = jwt.decode(token["id_token"], keys, algorithms=["ES256"]).claims
    assert claims["sub"] == user_id and claims["nonce"] == nonce and claims["aud"] == reg.client_id
    assert client.get(idp.url + "/userinfo").json()["email"] == "user@example.com"


def test_prompt_none_without_a_session_returns_login_required_in_chromium(browser, idp, relying_party):
    redirect_uri, hits = relying_party
    reg = register(idp, redirect_uris=(redirect_uri,))
    client = rp(idp, reg)
    url, state = client.create_authorization_url(
        idp.url + "/authorize", code_verifier=secrets.token_urlsafe(48), nonce="n1", prompt="none"
    )
    browser.get(url)
    params = _wait_for_rp(browser, hits)
    assert params["error"] == "login_required" and params["state"] == state and "code" not in params
