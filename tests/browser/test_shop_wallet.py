"""The relying side end to end in Chromium (issue 8, Done-when 1).

A new person signs up, confirms the address from the outbox, enrols an authenticator
app and a passkey (virtual authenticator), and signs in to the shop with the app. A
small purchase goes through as it is; a large one is refused by the wallet for want of
phishing-resistant assurance, the shop sends the person back to the provider, the
passkey is used, and the same payment goes through. The wallet's ledger then holds
exactly two debits. An operator runs ``idp users force-reset`` (the installed CLI, in a
subprocess, on the same database): the wallet refuses the next payment made with the
token the shop obtained before, by introspection, though its signature still verifies.

The provider runs as the live server (MFA policy ``required``), the wallet and the shop
in-process on their own loopback sockets (127.0.0.1, not the provider's localhost).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyotp
import pytest
from flask import Flask
from selenium.webdriver.common.by import By
from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from werkzeug.serving import BaseWSGIServer, make_server

from examples.shop import create_app as create_shop
from examples.shop.settings import ShopSettings
from examples.wallet import create_app as create_wallet
from examples.wallet.settings import WalletSettings
from tests.browser.waits import replaced
from tests.fixtures import LiveServer

EMAIL = "shopper@example.com"
PASSWORD = "a long passphrase nobody else uses"
OPENING = 100_000
SMALL, LARGE = 300, 45_000  # the shop's sticker and bicycle, in cents
STEP_UP_ABOVE = 5_000


@dataclass
class Shops:
    shop_url: str
    shop: Flask
    wallet: Flask


def _serve(app: Flask, server: BaseWSGIServer) -> threading.Thread:
    server.app = app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def shops(live_server: LiveServer, tmp_path: Path) -> Iterator[Shops]:
    wallet_server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    shop_server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    wallet_url = f"http://127.0.0.1:{wallet_server.socket.getsockname()[1]}"
    shop_url = f"http://127.0.0.1:{shop_server.socket.getsockname()[1]}"
    threads = []
    try:
        registry = live_server.app.extensions["idp"]
        with registry.sessionmaker() as db:
            services = registry.services(db)
            wallet_client, wallet_secret = services.clients.create(
                name="Wallet", grant_types=["client_credentials"], resource_uri=wallet_url)
            shop_client, shop_secret = services.clients.create(
                name="Shop", redirect_uris=[shop_url + "/callback"], first_party=True, scope="openid email wallet:pay")
            db.commit()
            wallet_id, shop_id = wallet_client.id, shop_client.id
        wallet = create_wallet(WalletSettings(
            issuer=live_server.url, resource_uri=wallet_url, client_id=wallet_id, client_secret=str(wallet_secret),
            database=tmp_path / "wallet.sqlite3", step_up_above=STEP_UP_ABOVE, opening_balance=OPENING,
        ))
        shop = create_shop(ShopSettings(
            issuer=live_server.url, client_id=shop_id, client_secret=str(shop_secret), public_url=shop_url,
            wallet_url=wallet_url, secret_key=secrets.token_urlsafe(32),
        ))
        threads = [(wallet_server, _serve(wallet, wallet_server)), (shop_server, _serve(shop, shop_server))]
        yield Shops(shop_url=shop_url, shop=shop, wallet=wallet)
    finally:
        for server, thread in threads:
            server.shutdown()
            thread.join(timeout=5)
        wallet_server.server_close()
        shop_server.server_close()


# ------------------------------------------------------------------ helpers
def css(browser: WebDriver, selector: str, timeout: float = 10):  # type: ignore[no-untyped-def]
    return WebDriverWait(browser, timeout).until(ec.presence_of_element_located((By.CSS_SELECTOR, selector)))


def submit(browser: WebDriver, selector: str, timeout: float = 10) -> None:
    """Click a submit button and wait for the next page to replace this one."""
    button = css(browser, selector)
    button.click()
    WebDriverWait(browser, timeout).until(replaced(button))


def wait_url(browser: WebDriver, prefix: str, timeout: float = 15) -> None:
    WebDriverWait(browser, timeout).until(lambda b: b.current_url.split("?")[0].startswith(prefix))


def path(browser: WebDriver) -> str:
    return urlsplit(browser.current_url).path


def add_authenticator(browser: WebDriver) -> None:
    options = VirtualAuthenticatorOptions()
    options.protocol = VirtualAuthenticatorOptions.Protocol.CTAP2
    options.transport = VirtualAuthenticatorOptions.Transport.INTERNAL
    options.has_resident_key = True
    options.has_user_verification = True
    options.is_user_verified = True
    browser.add_virtual_authenticator(options)


def next_totp(secret: str) -> str:
    """The code of the next 30-second step: accepted now (one step of drift either way)
    and newer than the one used at enrolment, which can never be used again."""
    return pyotp.TOTP(secret).at(int(time.time()) + 30)


def ledger(shops: Shops, sub: str):  # type: ignore[no-untyped-def]
    return shops.wallet.extensions["wallet"].ledger.entries(sub)


def shop_session(browser: WebDriver, shops: Shops) -> dict:  # type: ignore[type-arg]
    """The shop's session as the shop reads it (the signed cookie, decoded with its key)."""
    cookie = browser.get_cookie("shop_session")
    assert cookie is not None
    return shops.shop.session_interface.get_signing_serializer(shops.shop).loads(cookie["value"])  # type: ignore[union-attr]


def force_reset_cli(live: LiveServer, email: str) -> subprocess.CompletedProcess[str]:
    """The operator's command: the installed console script, on the live server's database."""
    settings = live.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_ENV="testing",
        IDP_ISSUER=settings.issuer,
        IDP_DATABASE_URL=settings.database_url,
        IDP_KEYS_DIR=str(settings.keys_dir),
        IDP_MAIL_OUTBOX=str(settings.mail_outbox),
        IDP_ARGON2_TIME_COST="1",
        IDP_ARGON2_MEMORY_KIB="8",
        IDP_ARGON2_PARALLELISM="1",
    )
    if settings.redis_url:
        env.update(IDP_REDIS_URL=settings.redis_url, IDP_REDIS_PREFIX=settings.redis_prefix)
    idp = Path(sys.executable).parent / "idp"
    return subprocess.run([str(idp), "users", "force-reset", "--email", email], env=env, capture_output=True,
                          text=True, timeout=60, check=False)


# --------------------------------------------------------------------- test
def test_sign_up_enrol_a_passkey_buy_small_then_large_with_step_up_then_force_reset(
    browser: WebDriver, live_server: LiveServer, shops: Shops
) -> None:
    idp = live_server.url
    add_authenticator(browser)

    # Sign up, and confirm the address with the link from the outbox.
    browser.get(idp + "/register")
    css(browser, "input[name=username]").send_keys(EMAIL)
    css(browser, "input[name=password]").send_keys(PASSWORD)
    submit(browser, "button[type=submit]")
    assert EMAIL in css(browser, "[data-testid=check-email]").text
    browser.get(live_server.outbox.last_link(EMAIL, "/verify-email"))
    submit(browser, "form[action='/verify-email'] button[type=submit]")
    assert path(browser) == "/login"

    # First sign-in: a password is not enough here; the mailed proof, then an authenticator app.
    css(browser, "input[name=username]").send_keys(EMAIL)
    css(browser, "input[name=password]").send_keys(PASSWORD)
    submit(browser, "main form button[type=submit]")
    assert path(browser) == "/mfa/setup"
    submit(browser, "[data-testid=send-proof]")
    browser.get(live_server.outbox.last_link(EMAIL, "/mfa/email-proof"))
    submit(browser, "[data-testid=confirm-proof]")
    css(browser, "[data-testid=setup-totp]").click()
    secret = css(browser, "[data-testid=totp-secret]").text
    css(browser, "input[name=code]").send_keys(pyotp.TOTP(secret).now())
    submit(browser, "form.stack button[type=submit]")
    css(browser, "[data-testid=recovery-codes]")
    css(browser, "[data-testid=continue]").click()
    wait_url(browser, idp + "/account")

    # And a passkey, from the account page.
    css(browser, "#passkey-name").send_keys("laptop")
    css(browser, "[data-testid=add-passkey]").click()
    css(browser, "[data-testid=factor][data-kind=passkey]", timeout=15)

    # Signed out of the provider; then to the shop, signing in with the app (acr mfa).
    browser.get(idp + "/logout")
    submit(browser, "main form button[type=submit]")
    browser.get(shops.shop_url + "/")
    css(browser, "[data-testid=sign-in]").click()
    wait_url(browser, idp + "/login")
    css(browser, "input[name=username]").send_keys(EMAIL)
    css(browser, "input[name=password]").send_keys(PASSWORD)
    submit(browser, "main form button[type=submit]")
    assert path(browser) == "/mfa", browser.current_url
    css(browser, "form:has(input[name=method][value=totp]) input[name=code]").send_keys(next_totp(secret))
    submit(browser, "form:has(input[name=method][value=totp]) button[type=submit]")
    wait_url(browser, shops.shop_url + "/")
    assert css(browser, "[data-testid=signed-in-as]").text == EMAIL
    assert css(browser, "[data-testid=balance]").text == "1000.00"
    person = shop_session(browser, shops)["user"]
    assert person["acr"] == "urn:idp:acr:mfa"

    # A small purchase: no step-up.
    submit(browser, "[data-testid=buy-sticker]")
    assert path(browser) == "/" and browser.current_url.startswith(shops.shop_url)
    assert "sticker" in css(browser, "[data-testid=receipt]").text
    assert css(browser, "[data-testid=balance]").text == "997.00"

    # A large one: the wallet wants a passkey; the shop sends the person back to the
    # provider, which asks for it; back in the shop, the same payment goes through.
    css(browser, "[data-testid=buy-bicycle]").click()
    css(browser, "[data-testid=phr-needed]", timeout=15)
    assert browser.current_url.startswith(idp + "/mfa")
    css(browser, "[data-testid=passkey-second-factor]").click()
    wait_url(browser, shops.shop_url + "/", timeout=20)
    receipt = css(browser, "[data-testid=receipt]")
    assert "bicycle" in receipt.text
    assert css(browser, "[data-testid=balance]").text == "547.00"
    assert shop_session(browser, shops)["user"]["acr"] == "urn:idp:acr:phr"

    # The wallet's ledger: the opening credit, then exactly two debits.
    entries = ledger(shops, person["sub"])
    assert [(e.kind, e.amount) for e in entries] == [("opening", OPENING), ("debit", SMALL), ("debit", LARGE)]
    assert [e.balance_after for e in entries] == [OPENING, OPENING - SMALL, OPENING - SMALL - LARGE]
    assert entries[2].reference == receipt.get_attribute("data-reference")

    # The operator forces a password reset for this person.
    old_token = shop_session(browser, shops)["token"]["access_token"]
    reset = force_reset_cli(live_server, EMAIL)
    assert reset.returncode == 0, reset.stderr
    # The old token still verifies on its own (signature, aud, exp) ...
    shops.wallet.extensions["wallet"].validator.validate(old_token, scope="wallet:pay")

    # ... but the wallet asks the provider before moving money: the next purchase is refused.
    submit(browser, "[data-testid=buy-sticker]")
    error = css(browser, "[data-testid=payment-error]")
    assert error.get_attribute("data-error") == "invalid_token", error.text
    assert browser.find_elements(By.CSS_SELECTOR, "[data-testid=sign-in]")
    assert [(e.kind, e.amount) for e in ledger(shops, person["sub"])] == [
        ("opening", OPENING), ("debit", SMALL), ("debit", LARGE)]

    csp = [e for e in browser.get_log("browser") if "Content Security Policy" in e.get("message", "")]
    assert csp == []
