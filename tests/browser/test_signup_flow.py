"""The whole newcomer journey in Chromium: sign up, confirm the address from the outbox,
sign in, see the session on the account page, end other sessions, end this one, and be
signed out."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.waits import replaced

EMAIL = "newcomer@example.com"
PASSWORD = "a long passphrase nobody else uses"
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')

# IDP_MFA_POLICY=optional: a password alone reaches the account page (issue 4 covers the
# "required" policy, whose sign-in continues to the second-factor pages).
pytestmark = pytest.mark.parametrize("live_server", [{"mfa_policy": "optional"}], indirect=True)


def css(browser: WebDriver, selector: str):  # type: ignore[no-untyped-def]
    return WebDriverWait(browser, 10).until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))


def submit(browser: WebDriver, selector: str) -> None:
    """Click a submit button and wait for the next page to replace this one."""
    button = css(browser, selector)
    button.click()
    WebDriverWait(browser, 10).until(replaced(button))


def path(browser: WebDriver) -> str:
    return urlsplit(browser.current_url).path


def confirm_device_if_asked(browser: WebDriver, live_server, email: str) -> None:  # type: ignore[no-untyped-def]
    """A correct password from a browser the account has not seen leads to a mailed
    confirmation link first (attack protection); follow it as the person would."""
    if path(browser) != "/login/new-device":
        return
    submit(browser, "form[action='/login/new-device'] button[type=submit]")
    browser.get(live_server.outbox.last_link(email, "/login/link/confirm"))
    submit(browser, "form[action^='/login/link/confirm'] button[type=submit]")


def second_device_signs_in(live_server) -> httpx.Client:  # type: ignore[no-untyped-def]
    """Another device (a phone app's web view, say) signs in to the same account."""
    phone = httpx.Client(base_url=live_server.url, follow_redirects=False, timeout=10)
    page = phone.get("/login")
    token = CSRF_RE.search(page.text).group(1)  # type: ignore[union-attr]
    response = phone.post("/login", data={"csrf_token": token, "username": EMAIL, "password": PASSWORD})
    assert response.status_code == 302
    return phone


def phone_is_signed_in(phone: httpx.Client) -> bool:
    response = phone.get("/account")
    # Signed in: the page, or (from a new device) the device check; signed out: sign-in.
    return not (response.status_code == 302 and response.headers["Location"].startswith("/login?"))


def test_sign_up_verify_sign_in_see_and_end_sessions(browser, live_server):
    # Sign up.
    browser.get(live_server.url + "/register")
    css(browser, "input[name=username]").send_keys(EMAIL)
    css(browser, "input[name=password]").send_keys(PASSWORD)
    submit(browser, "button[type=submit]")
    assert EMAIL in css(browser, "[data-testid=check-email]").text

    # Confirm the address with the link from the outbox: GET shows a button, POST spends it.
    link = live_server.outbox.last_link(EMAIL, "/verify-email")
    assert link.startswith(live_server.url + "/verify-email?token=")
    browser.get(link)
    submit(browser, "form[action='/verify-email'] button[type=submit]")
    assert path(browser) == "/login"
    assert "confirmed" in browser.find_element(By.TAG_NAME, "main").text

    # Sign in.
    css(browser, "input[name=username]").send_keys(EMAIL)
    css(browser, "input[name=password]").send_keys(PASSWORD)
    assert len(browser.find_elements(By.CSS_SELECTOR, "main form button[type=submit]")) == 1
    submit(browser, "main form button[type=submit]")
    confirm_device_if_asked(browser, live_server, EMAIL)
    assert path(browser) == "/account"
    assert css(browser, "[data-testid=account-email]").text == EMAIL

    # The session cookie is out of reach of page scripts.
    sso = browser.get_cookie("idp_sso")
    assert sso is not None and sso["httpOnly"] is True and sso["sameSite"] == "Lax"
    assert "idp_sso" not in browser.execute_script("return document.cookie")

    # This session is listed, marked as this browser.
    sessions = browser.find_elements(By.CSS_SELECTOR, "[data-testid=session]")
    assert len(sessions) == 1 and sessions[0].get_attribute("data-current") == "true"

    # A second device signs in; after a reload both are listed.
    phone = second_device_signs_in(live_server)
    browser.refresh()
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=session]")) == 2
    assert phone_is_signed_in(phone)

    # End all other sessions: the phone is out, this browser stays in.
    submit(browser, "[data-testid=end-other-sessions]")
    assert path(browser) == "/account"
    assert "Signed out 1 other session." in browser.find_element(By.TAG_NAME, "main").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "[data-testid=session]")) == 1
    assert not phone_is_signed_in(phone)
    phone.close()

    # End this session: signed out, back on the sign-in page.
    submit(browser, "[data-testid=session][data-current=true] [data-testid=end-session]")
    assert path(browser) == "/login"
    assert browser.get_cookie("idp_sso") is None

    # Visiting the account page now leads to the sign-in page.
    browser.get(live_server.url + "/account")
    assert path(browser) == "/login"
    assert css(browser, "input[name=username]").is_displayed()
    assert css(browser, "input[name=password]").is_displayed()

    # No page along the way tripped the Content-Security-Policy.
    csp = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert csp == []
