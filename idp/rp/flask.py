"""Flask glue: ``@require_token`` on a view, RFC 6750 §3 answers with WWW-Authenticate.

    init_app(app, validator, realm="wallet")

    @app.post("/pay")
    @require_token(scope="wallet:pay")
    def pay():
        claims = current_claims()
        if amount > limit:
            validator.require_acr(claims, "urn:idp:acr:phr")   # -> 401, RFC 9470 step-up

The token is read only from the Authorization header (RFC 9700 §2.5 / RFC 6750 §2.3:
never from the query string, where logs and Referer headers keep it). A request that
also carries ``access_token`` in the query or a form body is refused with 400, as RFC
6750 §2 forbids more than one method. Errors raised by a view itself (InvalidToken,
InsufficientScope, InsufficientAuthentication) are answered the same way, with a JSON
body ``{"error", "error_description"}`` and ``Cache-Control: no-store``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, jsonify, request

from idp.rp.errors import (
    InsufficientAuthentication,
    InsufficientScope,
    InvalidRequest,
    ProviderUnavailable,
    TokenError,
)
from idp.rp.validator import TokenValidator

log = logging.getLogger(__name__)

EXTENSION = "idp.rp"
_F = TypeVar("_F", bound=Callable[..., Any])
# RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
_CLAIMS = "_idp_rp_claims"


class _NoToken(TokenError):
    """No credentials at all: RFC 6750 §3.1 says answer without an error code."""

    error = ""


class _State:
    def __init__(self, validator: TokenValidator, realm: str) -> None:
        self.validator = validator
        self.realm = realm


def init_app(app: Flask, validator: TokenValidator, *, realm: str | None = None) -> None:
    app.extensions[EXTENSION] = _State(validator, realm or validator.audience)
    app.register_error_handler(TokenError, _answer)


def current_claims() -> dict[str, Any]:
    """The claims of the token that ``@require_token`` accepted for this request."""
    claims = g.get(_CLAIMS)
    if claims is None:
        raise RuntimeError("current_claims() outside a view decorated with @require_token")
    return claims


def validator() -> TokenValidator:
    return _state().validator


def require_token(
    scope: str | Iterable[str] | None = None, acr: str | None = None, introspect: bool = False
) -> Callable[[_F], _F]:
    def decorate(view: _F) -> _F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = bearer_token()
            setattr(g, _CLAIMS, _state().validator.validate(token, scope=scope, acr=acr, introspect=introspect))
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def bearer_token() -> str:
    """The token from ``Authorization: Bearer``; _NoToken or InvalidRequest otherwise."""
    elsewhere = "access_token" in request.args or (
        request.mimetype == "application/x-www-form-urlencoded" and "access_token" in request.form
    )
    header = request.headers.get("Authorization")
    if header is None:
        if elsewhere:
            raise InvalidRequest("token outside the Authorization header")
        raise _NoToken("no Authorization header")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() != "bearer":
        if elsewhere:
            raise InvalidRequest("token outside the Authorization header")
        raise _NoToken(f"Authorization scheme {scheme[:20]!r}, not Bearer")
    if not _B64TOKEN.fullmatch(credentials):
        raise InvalidRequest("malformed Bearer credentials")
    if elsewhere:
        raise InvalidRequest("token in more than one place")
    return credentials


def _state() -> _State:
    state = current_app.extensions.get(EXTENSION)
    if state is None:
        raise RuntimeError("idp.rp.flask.init_app(app, validator) was not called")
    return state


def _quoted(value: str) -> str:
    # RFC 9110 §5.6.4 quoted-string; our values never need quotes, so drop rather than escape.
    return '"' + "".join(c for c in value if c not in '"\\' and " " <= c <= "~") + '"'


def _answer(error: TokenError) -> Response:
    state = current_app.extensions.get(EXTENSION)
    realm = state.realm if state else "api"
    if isinstance(error, ProviderUnavailable):
        log.warning("token not checkable: %s", error)
        response = jsonify(error=error.error, error_description=error.description)
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        response.headers["Cache-Control"] = "no-store"
        return response
    log.info("bearer token refused (%s): %s", error.error or "no token", error)
    params = [f"realm={_quoted(realm)}"]
    if error.error:
        params.append(f"error={_quoted(error.error)}")
        params.append(f"error_description={_quoted(error.description)}")
    if isinstance(error, InsufficientScope):
        params.append(f"scope={_quoted(error.scope)}")
    if isinstance(error, InsufficientAuthentication):
        if error.acr_values:
            params.append(f"acr_values={_quoted(error.acr_values)}")
        if error.max_age is not None:
            params.append(f'max_age="{int(error.max_age)}"')
    body: dict[str, Any] = {"error": error.error or "unauthorized"}
    body["error_description"] = error.description if error.error else "An access token is required"
    if isinstance(error, InsufficientScope):
        body["scope"] = error.scope
    if isinstance(error, InsufficientAuthentication):
        if error.acr_values:
            body["acr_values"] = error.acr_values
        if error.max_age is not None:
            body["max_age"] = int(error.max_age)
    response = jsonify(body)
    response.status_code = error.status
    response.headers["WWW-Authenticate"] = "Bearer " + ", ".join(params)
    response.headers["Cache-Control"] = "no-store"
    return response
