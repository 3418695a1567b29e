"""The wallet's rules (examples/wallet) with real tokens from a live provider.

The provider runs on a real socket; the wallet runs in-process on another loopback
socket and checks tokens with idp.rp (JWKS, and introspection for payments) over HTTP.
Tokens come from the real authorization endpoint: an SSO session with the methods the
test names (via the real session service), /authorize with resource=<wallet> as the
shop asks, and the code exchanged at /token by the shop's confidential client.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from examples.shop import create_app as create_shop
from examples.shop.settings import ShopSettings
from examples.wallet import create_app as create_wallet
from examples.wallet.ledger import Ledger
from examples.wallet.settings import WalletSettings
from idp.context import RequestContext
from tests.fixtures import CSRF_RE, LiveServer

EMAIL = "payer@example.com"
PASSWORD = "correct horse battery staple"
SHOP_REDIRECT = "http://127.0.0.1:8999/callback"
MFA = ("pwd", "otp")  # acr urn:idp:acr:mfa
PASSKEY = ("pwd", "hwk", "user")  # acr urn:idp:acr:phr
OPENING = 100_000
STEP_UP_ABOVE = 5_000


@dataclass
class World:
    live: LiveServer
    wallet_url: str
    ledger: Ledger
    shop_id: str
    shop_secret: str
    user_id: str

    def browser(self, amr: tuple[str, ...], email: str = EMAIL) -> httpx.Client:
        """A person's browser holding an SSO session proved with ``amr``."""
        registry = self.live.app.extensions["idp"]
        with registry.sessionmaker() as db:
            services = registry.services(db)
            user = services.accounts.by_email(email)
            _record, secret = services.sessions.start(user, amr=list(amr), ctx=RequestContext(ip="127.0.0.1"))
            db.commit()
        return httpx.Client(base_url=self.live.url, follow_redirects=False, timeout=10, cookies={"idp_sso": secret})

    def token(self, browser: httpx.Client, *, scope: str = "openid email wallet:pay",
              resource: str | None = "wallet") -> str:
        """The shop's code flow from ``browser``'s session: the access token."""
        shop = OAuth2Session(self.shop_id, self.shop_secret, redirect_uri=SHOP_REDIRECT, scope=scope,
                             code_challenge_method="S256", token_endpoint_auth_method="client_secret_basic")
        verifier = secrets.token_urlsafe(48)
        extra = {"resource": self.wallet_url} if resource == "wallet" else {}
        url, _state = shop.create_authorization_url(self.live.url + "/authorize", code_verifier=verifier,
                                                    nonce=secrets.token_urlsafe(8), **extra)
        answer = browser.get(url)
        assert answer.status_code == 302 and answer.headers["Location"].startswith(SHOP_REDIRECT), answer.text[:300]
        token = shop.fetch_token(self.live.url + "/token", authorization_response=answer.headers["Location"],
                                 code_verifier=verifier)
        return str(token["access_token"])

    def pay(self, token: str | None, amount: object, reference: object = None, **kwargs) -> httpx.Response:  # type: ignore[no-untyped-def]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if "content" not in kwargs:
            kwargs["json"] = {"amount": amount, "reference": reference or "order-" + secrets.token_hex(6)}
        return httpx.post(self.wallet_url + "/payments", headers=headers | kwargs.pop("headers", {}), timeout=10,
                          **kwargs)

    def balance(self, token: str) -> httpx.Response:
        return httpx.get(self.wallet_url + "/balance", headers={"Authorization": f"Bearer {token}"}, timeout=10)

    def debits(self) -> list[int]:
        return [e.amount for e in self.ledger.entries(self.user_id) if e.kind == "debit"]


@pytest.fixture
def world(live_server: LiveServer, tmp_path: Path) -> Iterator[World]:
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    try:
        yield from _world(live_server, tmp_path, server)
    finally:
        server.server_close()


def _world(live_server: LiveServer, tmp_path: Path, server) -> Iterator[World]:  # type: ignore[no-untyped-def]
    wallet_url = f"http://127.0.0.1:{server.socket.getsockname()[1]}"
    registry = live_server.app.extensions["idp"]
    with registry.sessionmaker() as db:
        services = registry.services(db)
        wallet, wallet_secret = services.clients.create(
            name="Wallet", grant_types=["client_credentials"], resource_uri=wallet_url)
        shop, shop_secret = services.clients.create(
            name="Shop", redirect_uris=[SHOP_REDIRECT], first_party=True, scope="openid email wallet:pay")
        user = services.accounts.create_by_operator(EMAIL, PASSWORD, verified=True)
        db.commit()
        ids = (wallet.id, shop.id, user.id)
    settings = WalletSettings(
        issuer=live_server.url, resource_uri=wallet_url, client_id=ids[0], client_secret=str(wallet_secret),
        database=tmp_path / "wallet.sqlite3", step_up_above=STEP_UP_ABOVE, opening_balance=OPENING,
    )
    app = create_wallet(settings)
    server.app = app
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield World(live=live_server, wallet_url=wallet_url, ledger=app.extensions["wallet"].ledger,
                    shop_id=ids[1], shop_secret=str(shop_secret), user_id=ids[2])
    finally:
        server.shutdown()
        thread.join(timeout=5)


def test_small_payment_needs_no_step_up_and_a_large_one_asks_for_a_passkey(world: World) -> None:
    token = world.token(world.browser(MFA))

    small = world.pay(token, 300, "order-small")
    assert small.status_code == 201, small.text
    assert small.json()["balance"] == OPENING - 300 and small.json()["replayed"] is False

    large = world.pay(token, 45_000, "order-large")
    assert large.status_code == 401
    challenge = large.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer ")
    assert 'error="insufficient_user_authentication"' in challenge
    assert 'acr_values="urn:idp:acr:phr"' in challenge
    # Just above the threshold is above it; exactly at it is not.
    assert world.pay(token, STEP_UP_ABOVE + 1).status_code == 401
    assert world.pay(token, STEP_UP_ABOVE).status_code == 201

    assert world.debits() == [300, STEP_UP_ABOVE]
    assert world.balance(token).json() == {"balance": OPENING - 300 - STEP_UP_ABOVE, "currency": "EUR"}


def test_a_passkey_token_pays_a_large_amount_once_per_reference(world: World) -> None:
    token = world.token(world.browser(PASSKEY))

    first = world.pay(token, 45_000, "order-bike")
    assert first.status_code == 201, first.text
    # The shop retries after a lost answer: the same payment, nothing charged again.
    again = world.pay(token, 45_000, "order-bike")
    assert again.status_code == 200
    assert again.json()["payment_id"] == first.json()["payment_id"] and again.json()["replayed"] is True
    assert again.json()["balance"] == OPENING - 45_000
    # The same reference for another amount is not a retry.
    conflict = world.pay(token, 45_001, "order-bike")
    assert conflict.status_code == 409 and conflict.json()["error"] == "reference_conflict"
    # More than the balance: refused, nothing moves.
    broke = world.pay(token, OPENING, "order-too-much")
    assert broke.status_code == 409 and broke.json()["error"] == "insufficient_funds"

    assert world.debits() == [45_000]
    assert world.balance(token).json()["balance"] == OPENING - 45_000


def test_the_shops_own_token_or_one_without_the_scope_cannot_pay(world: World) -> None:
    browser = world.browser(PASSKEY)

    # No resource: the token's audience is the shop itself, not the wallet.
    for_the_shop = world.token(browser, resource=None)
    refused = world.pay(for_the_shop, 300)
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert world.balance(for_the_shop).status_code == 401

    # For the wallet, but without wallet:pay.
    no_scope = world.token(browser, scope="openid email")
    refused = world.pay(no_scope, 300)
    assert refused.status_code == 403
    assert 'error="insufficient_scope"' in refused.headers["WWW-Authenticate"]
    assert 'scope="wallet:pay"' in refused.headers["WWW-Authenticate"]

    # No token at all: a bare challenge (RFC 6750 §3.1: no error code).
    bare = world.pay(None, 300)
    assert bare.status_code == 401 and bare.headers["WWW-Authenticate"] == 'Bearer realm="wallet"'

    assert world.ledger.entries(world.user_id) == []


def test_a_token_of_a_session_that_ended_cannot_pay_though_its_signature_still_verifies(world: World) -> None:
    browser = world.browser(PASSKEY)
    token = world.token(browser)
    assert world.pay(token, 300).status_code == 201

    # The person signs out at the provider: the tokens of that session are revoked.
    page = browser.get("/logout")
    signed_out = browser.post("/logout", data={"csrf_token": CSRF_RE.search(page.text).group(1)})  # type: ignore[union-attr]
    assert signed_out.status_code in (302, 303)

    refused = world.pay(token, 300)
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert world.debits() == [300]
    # Documented choice (examples/README.md): balance reads are checked locally only.
    assert world.balance(token).status_code == 200


BAD_BODIES = [
    (b"not json", "application/json", 400),
    (b'{"amount": 300, "reference": "x"', "application/json", 400),
    (b"[300]", "application/json", 400),
    (b'"300"', "application/json", 400),
    (b"amount=300&reference=x", "application/x-www-form-urlencoded", 415),
    (json.dumps({"amount": 0, "reference": "r"}).encode(), "application/json", 400),
    (json.dumps({"amount": -300, "reference": "r"}).encode(), "application/json", 400),
    (json.dumps({"amount": 3.5, "reference": "r"}).encode(), "application/json", 400),
    (json.dumps({"amount": "300", "reference": "r"}).encode(), "application/json", 400),
    (json.dumps({"amount": True, "reference": "r"}).encode(), "application/json", 400),
    (b'{"amount": 1' + b"0" * 400 + b', "reference": "r"}', "application/json", 400),
    (b'{"amount": 1e999, "reference": "r"}', "application/json", 400),
    (json.dumps({"amount": 300}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": ""}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": "r" * 65}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": "caf\u00e9"}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": "order\n"}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": "\u202eredro"}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": ["r"]}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": "r", "payee": "me"}).encode(), "application/json", 400),
    (json.dumps({"amount": 300, "reference": "r", "pad": "x" * 8000}).encode(), "application/json", 413),
]


def test_bad_payment_requests_get_a_clear_4xx_and_move_nothing(world: World) -> None:
    token = world.token(world.browser(MFA))
    for body, content_type, status in BAD_BODIES:
        answer = world.pay(token, None, content=body, headers={"Content-Type": content_type})
        assert answer.status_code == status, (body[:40], answer.status_code, answer.text)
        assert answer.headers["Content-Type"] == "application/json", body[:40]
        assert answer.json()["error"], body[:40]
    assert world.debits() == []


def test_duplicate_json_keys_charge_what_the_answer_shows(world: World) -> None:
    token = world.token(world.browser(MFA))
    answer = world.pay(token, None, content=b'{"amount": 300, "amount": 1, "reference": "r"}',
                       headers={"Content-Type": "application/json"})
    # JSON's last key wins; what is charged is what the answer says, nothing else.
    assert answer.status_code == 201 and answer.json()["amount"] == 1
    assert world.debits() == [1]


def test_forged_or_malformed_tokens_are_refused_without_touching_the_ledger(world: World) -> None:
    for token in (
        "not-a-jwt",
        "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0.eyJzdWIiOiJ4In0.",  # alg none
        "a.b.c",
        "x" * 9000,
    ):
        answer = world.pay(token, 300)
        assert answer.status_code in (400, 401), (token[:20], answer.text)
        assert answer.headers["WWW-Authenticate"].startswith("Bearer "), token[:20]
    assert world.ledger.entries(world.user_id) == []


# ------------------------------------------------------------------ the shop
def shop_client(world: World) -> FlaskClient:
    app = create_shop(ShopSettings(
        issuer=world.live.url, client_id=world.shop_id, client_secret=world.shop_secret,
        public_url=SHOP_REDIRECT.removesuffix("/callback"), wallet_url=world.wallet_url,
        secret_key=secrets.token_urlsafe(32),
    ))
    return app.test_client()


def through_provider(browser: httpx.Client, shop_redirect: str) -> str:
    """The provider's answer to an authorization request from the shop: the callback path."""
    answer = browser.get(shop_redirect)
    assert answer.status_code == 302, answer.text[:300]
    location = answer.headers["Location"]
    assert location.startswith(SHOP_REDIRECT), location
    return location.removeprefix(SHOP_REDIRECT.removesuffix("/callback"))


def shop_page(shop: FlaskClient) -> str:
    return shop.get("/").get_data(as_text=True)


def buy(shop: FlaskClient, item: str):  # type: ignore[no-untyped-def]
    return shop.post("/buy", data={"csrf_token": CSRF_RE.search(shop_page(shop)).group(1), "item": item})  # type: ignore[union-attr]


def test_shop_steps_up_and_retries_the_same_payment_once(world: World) -> None:
    shop = shop_client(world)
    browser = world.browser(MFA)
    assert shop.get(through_provider(browser, shop.get("/login").headers["Location"])).status_code == 302
    assert "1000.00" in shop_page(shop)

    asked = buy(shop, "bicycle")
    location = asked.headers["Location"]
    assert location.startswith(world.live.url + "/authorize?")
    query = parse_qs(urlsplit(location).query)
    assert query["acr_values"] == ["urn:idp:acr:phr"] and query["resource"] == [world.wallet_url]
    assert world.debits() == []

    # The person proves it with a passkey (here: a fresh session with those methods).
    stronger = world.browser(PASSKEY)
    done = shop.get(through_provider(stronger, location))
    assert done.status_code == 302 and done.headers["Location"] == "/"
    page = shop_page(shop)
    assert 'data-testid="receipt"' in page and "550.00" in page
    assert world.debits() == [45_000]
    (debit,) = [e for e in world.ledger.entries(world.user_id) if e.kind == "debit"]
    assert f'data-reference="{debit.reference}"' in page


def test_shop_drops_the_purchase_when_another_account_signs_in_on_the_step_up(world: World) -> None:
    registry = world.live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        other = registry.services(db).accounts.create_by_operator("other@example.com", PASSWORD, verified=True)
        db.commit()
        other_id = other.id
    shop = shop_client(world)
    shop.get(through_provider(world.browser(MFA), shop.get("/login").headers["Location"]))
    location = buy(shop, "bicycle").headers["Location"]

    # Someone else's strong session answers the step-up: their token must not pay for this.
    shop.get(through_provider(world.browser(PASSKEY, email="other@example.com"), location))
    assert 'data-error="account_changed"' in shop_page(shop)
    assert world.debits() == []
    assert [e.kind for e in world.ledger.entries(other_id)] in ([], ["opening"])


def test_shop_refuses_a_callback_from_another_issuer_and_never_answers_500(world: World) -> None:
    shop = shop_client(world)
    login = shop.get("/login").headers["Location"]
    callback = through_provider(world.browser(MFA), login)
    # Mix-up (RFC 9207): a code delivered with another provider's iss is not redeemed.
    forged = callback.replace("iss=" + quote(world.live.url, safe=""), "iss=" + quote("https://evil.example", safe=""))
    assert forged != callback
    assert shop.get(forged).status_code == 400
    for path in (
        "/callback", "/callback?iss=" + quote(world.live.url, safe=""),
        "/callback?code=x&state=y&iss=" + quote(world.live.url, safe=""),
        "/callback?code=%00&state=%F0%9F%92%A5&iss=" + quote(world.live.url, safe=""),
        "/callback?error=access_denied&state=whatever", "/callback?error=" + "x" * 5000,
    ):
        answer = shop.get(path)
        assert 300 <= answer.status_code < 500, (path, answer.status_code)
    for data in ({}, {"item": "bicycle"}, {"csrf_token": "x", "item": "bicycle"}):
        assert shop.post("/buy", data=data).status_code == 400
    assert buy(shop, "\u202ebicycle").status_code == 400
    assert world.debits() == []
