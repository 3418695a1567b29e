"""Passkeys in real Chromium with its virtual authenticator (issue 4, Done 1).

One person's path under IDP_MFA_POLICY=required: password → mailed proof → authenticator
app (first factor) → a passkey added from the account page → usernameless passkey
sign-in → the passkey as the second factor after a password. The page script is the
shipped static/webauthn.js under the strict CSP: no console CSP violation is allowed.
"""

from __future__ import annotations

import pyotp
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.support.ui import WebDriverWait

EMAIL = "person@example.com"
PASSWORD = "correct horse battery staple"


@pytest.fixture
def person(live_server):  # type: ignore[no-untyped-def]
    registry = live_server.app.extensions["idp"]
    with registry.sessionmaker() as db:
        registry.services(db).accounts.create_by_operator(EMAIL, PASSWORD, verified=True)
        db.commit()
    return EMAIL


def _authenticator(browser) -> None:  # type: ignore[no-untyped-def]
    options = VirtualAuthenticatorOptions()
    options.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
    options.transport = VirtualAuthenticatorOptions.Transport.INTERNAL
    options.has_resident_key = True
    options.has_user_verification = True
    options.is_user_verified = True
    browser.add_virtual_authenticator(options)


def _wait_path(browser, path: str, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    WebDriverWait(browser, timeout).until(lambda b: b.current_url.split("?")[0].endswith(path))


def _css(browser, selector: str):  # type: ignore[no-untyped-def]
    return browser.find_element(By.CSS_SELECTOR, selector)


def _password_sign_in(browser, base: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(base + "/login")
    _css(browser, "input[name=username]").send_keys(EMAIL)
    _css(browser, "input[name=password]").send_keys(PASSWORD)
    _css(browser, "button[type=submit]").click()


def _sign_out(browser, base: str) -> None:  # type: ignore[no-untyped-def]
    browser.get(base + "/logout")
    _css(browser, "button[type=submit]").click()
    _wait_path(browser, "/login")


def test_register_a_passkey_sign_in_with_it_and_use_it_as_second_factor(browser, live_server, person):
    base = live_server.url
    _authenticator(browser)

    # Password, then the gate: no factor yet, so enrolment behind a mailed proof.
    _password_sign_in(browser, base)
    _wait_path(browser, "/mfa/setup")
    _css(browser, "[data-testid=send-proof]").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid=proof-sent]"))
    browser.get(live_server.outbox.last_link(EMAIL, "/mfa/email-proof"))
    _css(browser, "[data-testid=confirm-proof]").click()
    _wait_path(browser, "/mfa/setup")

    # First factor: an authenticator app (secret shown as text, QR as an image).
    _css(browser, "[data-testid=setup-totp]").click()
    secret = _css(browser, "[data-testid=totp-secret]").text
    qr = _css(browser, "img.qr")
    assert qr.get_attribute("src").startswith("data:image/svg+xml;base64,")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", qr) > 0
    _css(browser, "input[name=code]").send_keys(pyotp.TOTP(secret).now())
    _css(browser, "form.stack button[type=submit]").click()
    WebDriverWait(browser, 10).until(lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid=recovery-codes]"))
    _css(browser, "[data-testid=continue]").click()
    _wait_path(browser, "/account")

    # A passkey from the account page.
    _css(browser, "#passkey-name").send_keys("virtual key")
    _css(browser, "[data-testid=add-passkey]").click()
    WebDriverWait(browser, 15).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "[data-testid=factor][data-kind=passkey]")
    )
    assert "virtual key" in _css(browser, "[data-testid=sign-in-methods]").text

    # Usernameless sign-in with the passkey alone.
    _sign_out(browser, base)
    _css(browser, "[data-testid=passkey-signin]").click()
    _wait_path(browser, "/account", timeout=15)
    assert _css(browser, "[data-testid=account-email]").text == EMAIL

    # Password, then the passkey as the second factor.
    _sign_out(browser, base)
    _password_sign_in(browser, base)
    _wait_path(browser, "/mfa")
    _css(browser, "[data-testid=passkey-second-factor]").click()
    _wait_path(browser, "/account", timeout=15)
    assert _css(browser, "[data-testid=account-email]").text == EMAIL

    logs = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert logs == []
