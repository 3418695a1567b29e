"""The wallet's HTTP API (JSON only).

- ``POST /payments`` {"amount": cents, "reference": "..."}: pays the token's client
  (``client_id``) from the token's person (``sub``). Needs scope ``wallet:pay``, a token
  for the wallet's own resource URI, and above ``step_up_above`` cents the assurance
  ``urn:idp:acr:phr`` (otherwise RFC 9470 ``insufficient_user_authentication``). The
  token is also introspected (RFC 7662): money moves, so a token revoked a second ago
  (sign-out, password reset, force-reset) must not pay; a JWT signature cannot say that.
- ``GET /balance``: the person's balance, checked locally against the JWKS only: reading
  it with a token revoked minutes ago risks nothing worth a round trip per request.

Token errors answer per RFC 6750 §3 with ``WWW-Authenticate: Bearer ...``; everything
else is ``{"error", "error_description"}`` with a 4xx status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from examples.wallet.ledger import InsufficientFunds, Ledger, ReferenceConflict
from examples.wallet.settings import WalletSettings
from idp.rp import TokenValidator
from idp.rp import flask as rp_flask
from idp.rp.flask import current_claims, require_token

SCOPE = "wallet:pay"
ACR_PHISHING_RESISTANT = "urn:idp:acr:phr"
MAX_AMOUNT = 10_000_000  # cents; a bigger number is a mistake or an attack, not a purchase
_REFERENCE = re.compile(r"[A-Za-z0-9._:-]{1,64}")

bp = Blueprint("wallet", __name__)


@dataclass
class Wallet:
    settings: WalletSettings
    ledger: Ledger
    validator: TokenValidator


def wallet() -> Wallet:
    return current_app.extensions["wallet"]  # type: ignore[no-any-return]


class ApiError(Exception):
    def __init__(self, description: str, *, status: int = 400, error: str = "invalid_request") -> None:
        super().__init__(description)
        self.description, self.status, self.error = description, status, error


def make_validator(settings: WalletSettings) -> TokenValidator:
    """From the provider's discovery document, fetched once at start: the JWKS, and the
    introspection endpoint with the wallet's own client credentials."""
    return TokenValidator.for_issuer(
        settings.issuer, settings.resource_uri, client_id=settings.client_id, client_secret=settings.client_secret
    )


def payment_request() -> tuple[int, str]:
    if not request.is_json:
        raise ApiError("send JSON (Content-Type: application/json)", status=415)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ApiError("the body must be a JSON object")
    unknown = set(body) - {"amount", "reference"}
    if unknown:
        raise ApiError(f"unexpected fields: {', '.join(sorted(map(str, unknown)))[:200]}")
    amount, reference = body.get("amount"), body.get("reference")
    # bool is an int in Python; true is not one cent.
    if not isinstance(amount, int) or isinstance(amount, bool) or not 1 <= amount <= MAX_AMOUNT:
        raise ApiError(f"amount must be a whole number of cents from 1 to {MAX_AMOUNT}")
    if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
        raise ApiError("reference must be 1 to 64 characters: letters, digits, . _ : -")
    return amount, reference


@bp.post("/payments")
@require_token(scope=SCOPE, introspect=True)
def pay():  # type: ignore[no-untyped-def]
    w = wallet()
    claims = current_claims()
    amount, reference = payment_request()
    if amount > w.settings.step_up_above:
        w.validator.require_acr(claims, ACR_PHISHING_RESISTANT)
    payee = str(claims.get("client_id") or "")
    try:
        payment = w.ledger.pay(sub=str(claims["sub"]), payee=payee, reference=reference, amount=amount)
    except InsufficientFunds:
        raise ApiError("the balance does not cover this payment", status=409, error="insufficient_funds") from None
    except ReferenceConflict:
        raise ApiError("this reference was already used for another amount", status=409,
                         error="reference_conflict") from None
    entry = payment.entry
    current_app.logger.info("payment %s %s cents to %s (replayed=%s)", entry.id, entry.amount, payee, payment.replayed)
    body = {
        "payment_id": entry.id, "amount": entry.amount, "currency": w.settings.currency, "reference": entry.reference,
        "balance": entry.balance_after, "replayed": payment.replayed,
    }
    return jsonify(body), 200 if payment.replayed else 201


@bp.get("/balance")
@require_token(scope=SCOPE)
def balance():  # type: ignore[no-untyped-def]
    w = wallet()
    claims = current_claims()
    return jsonify(balance=w.ledger.balance(str(claims["sub"])), currency=w.settings.currency)


def _bad_request(error: ApiError) -> Response:
    response = jsonify(error=error.error, error_description=error.description)
    response.status_code = error.status
    return response


def _http_error(error: HTTPException) -> Response:
    # 404, 405, 413 ... as JSON too: this is an API, never an HTML page.
    response = jsonify(error=(error.name or "error").lower().replace(" ", "_"), error_description=error.description)
    response.status_code = error.code or 400
    return response


def init_app(app: Flask, validator: TokenValidator) -> None:
    # RFC 6750 §3 / RFC 9470 answers (WWW-Authenticate) for every token error, also
    # those the view raises itself (require_acr).
    rp_flask.init_app(app, validator, realm="wallet")
    app.register_blueprint(bp)
    app.register_error_handler(ApiError, _bad_request)
    app.register_error_handler(HTTPException, _http_error)
