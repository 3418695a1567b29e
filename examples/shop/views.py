"""The shop's pages: the cart, sign-in and its callback, buying.

A purchase is a pending payment with its own reference (the wallet's idempotency key).
When the wallet answers ``insufficient_user_authentication`` the pending purchase stays
in the session, the person goes back to the provider with the ``acr_values`` the wallet
named, and after the callback the same payment (same reference) is tried once more with
the new token: once, so a sign-in that still is not strong enough cannot loop.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from authlib.integrations.base_client import OAuthError
from flask import Blueprint, abort, current_app, redirect, render_template, request, session
from joserfc.errors import JoseError
from requests import RequestException

from examples.shop.settings import ShopSettings
from examples.shop.wallet_client import WalletClient

bp = Blueprint("shop", __name__)

# Seconds before its expiry that a token is no longer used: a payment must not race it.
EXPIRY_MARGIN = 30


@dataclass(frozen=True)
class Item:
    id: str
    name: str
    price: int  # cents


CATALOGUE = {item.id: item for item in (Item("sticker", "Sticker", 300), Item("bicycle", "Bicycle", 45_000))}


@dataclass
class Shop:
    settings: ShopSettings
    provider: Any  # Authlib's FlaskOAuth2App
    wallet: WalletClient


def shop() -> Shop:
    return current_app.extensions["shop"]  # type: ignore[no-any-return]


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _access_token() -> str | None:
    token = session.get("token")
    if not token or token.get("expires_at", 0) - EXPIRY_MARGIN < time.time():
        return None
    return str(token["access_token"])


def _notice(kind: str, text: str, **details: str) -> None:
    session["notice"] = {"kind": kind, "text": text, **details}


def _authorize(*, acr_values: str | None = None, max_age: str | None = None):  # type: ignore[no-untyped-def]
    s = shop()
    params = {"resource": s.settings.wallet_url}
    if acr_values:
        params["acr_values"] = acr_values
    if max_age:
        params["max_age"] = max_age
    return s.provider.authorize_redirect(s.settings.redirect_uri, **params)


@bp.get("/")
def cart():  # type: ignore[no-untyped-def]
    token = _access_token()
    balance = None
    if token is not None:
        outcome = shop().wallet.balance(token)
        if outcome.ok:
            balance = money(int(outcome.body["balance"]))
    return render_template(
        "cart.html",
        user=session.get("user") if token else None,
        items=CATALOGUE.values(),
        money=money,
        balance=balance,
        notice=session.pop("notice", None),
        unsettled=session.get("unsettled"),
    )


@bp.get("/login")
def login():  # type: ignore[no-untyped-def]
    return _authorize()


@bp.get("/callback")
def callback():  # type: ignore[no-untyped-def]
    s = shop()
    if "error" in request.args:
        session.pop("pending", None)
        _notice("error", "Sign-in did not complete; nothing was paid.", code=request.args.get("error", "")[:64])
        return redirect("/")
    # RFC 9207: the answer must come from our provider, not from another one we also use.
    if request.args.get("iss") != s.settings.issuer:
        abort(400, "The sign-in answer did not come from the expected provider.")
    try:
        token = s.provider.authorize_access_token()  # state, PKCE verifier, ID token (nonce, iss, aud, at_hash)
    except (OAuthError, JoseError, RequestException, ValueError) as error:
        current_app.logger.warning("sign-in failed: %s", error)
        session.pop("pending", None)
        _notice("error", "Sign-in did not complete; nothing was paid.", code="sign_in_failed")
        return redirect("/")
    person = token.get("userinfo") or {}
    pending = session.pop("pending", None)
    if pending and pending.get("sub") not in (None, person.get("sub")):
        # Someone else signed in on the step-up page: their token must not pay for this.
        pending = None
        _notice("error", "A different account signed in; the purchase was cancelled.", code="account_changed")
    session["user"] = {"sub": person.get("sub"), "email": person.get("email"), "acr": person.get("acr")}
    session["token"] = {"access_token": token["access_token"], "expires_at": token.get("expires_at", 0)}
    if pending:
        return _pay(pending)
    return redirect("/")


@bp.post("/buy")
def buy():  # type: ignore[no-untyped-def]
    item = CATALOGUE.get(request.form.get("item", ""))
    if item is None:
        abort(400, "No such item.")
    user = session.get("user") or {}
    pending = {
        "item": item.id, "amount": item.price, "reference": "order-" + secrets.token_hex(8),
        "sub": user.get("sub") if _access_token() else None, "stepped_up": False,
    }
    if _access_token() is None:
        session["pending"] = pending
        return _authorize()
    return _pay(pending)


@bp.post("/retry")
def retry():  # type: ignore[no-untyped-def]
    pending = session.pop("unsettled", None)
    if not pending:
        return redirect("/")
    if _access_token() is None:
        session["pending"] = pending
        return _authorize()
    return _pay(pending)


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    session.clear()
    return redirect("/")


def _pay(pending: dict[str, Any]):  # type: ignore[no-untyped-def]
    token = _access_token()
    item = CATALOGUE[pending["item"]]
    if token is None:
        session["pending"] = pending
        return _authorize()
    outcome = shop().wallet.pay(token, amount=pending["amount"], reference=pending["reference"])
    if outcome.ok:
        session.pop("unsettled", None)
        _notice("receipt", f"Paid {money(pending['amount'])} for the {item.name.lower()}.",
                payment_id=str(outcome.body.get("payment_id", "")), reference=pending["reference"])
    elif outcome.step_up and not pending["stepped_up"]:
        # RFC 9470 §4: back to the provider with what the wallet asked for; same reference after.
        session["pending"] = {**pending, "stepped_up": True, "sub": (session.get("user") or {}).get("sub")}
        return _authorize(acr_values=outcome.acr_values, max_age=outcome.max_age)
    elif outcome.status == 401:
        # invalid_token: the sign-in behind this token has ended (sign-out, reset, revocation).
        session.pop("token", None)
        session.pop("user", None)
        _notice("error", "The wallet refused the payment: your sign-in is no longer valid. Sign in again.",
                code=outcome.error)
    elif outcome.status == 0 or outcome.status >= 500:
        # The answer is unknown: the wallet may have paid. The same reference makes a retry safe.
        session["unsettled"] = pending
        _notice("error", "The wallet did not answer. Try the payment again: it will not be charged twice.",
                code=outcome.error or "unavailable")
    else:
        _notice("error", f"The wallet refused the payment ({outcome.error}).", code=outcome.error)
    return redirect("/")
