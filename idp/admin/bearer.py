"""Who may call the admin API: RFC 6750 bearer tokens, checked in full on every request.

A token is accepted only when all of these hold, in this order (the first failure
answers, with its RFC 6750 / RFC 9470 challenge):

1. it came in the ``Authorization: Bearer`` header, and only there (no cookies, so no
   CSRF; no query-string or form tokens, RFC 6750 §2.3 / RFC 9700 §4.3.2: URLs end up
   in logs);
2. it is one of our RFC 9068 access tokens: signed by a key we still publish, our
   ``iss``, unexpired, ``typ: at+jwt`` (TokenMinter.verify);
3. its ``aud`` names the admin API (RFC 8707: settings.admin_audience), so a token
   minted for the wallet or the shop cannot be replayed here;
4. its ``jti`` is recorded and unrevoked (logout, revocation, disable, code replay);
5. it was issued for a person (client_credentials tokens have no user), through a client
   that is still enabled;
6. that person's account is active and ``is_admin`` (checked now, not when issued: a
   revocation of admin rights bites at once);
7. the person's sign-in was phishing-resistant (``acr`` urn:idp:acr:phr, idp/assurance.py):
   otherwise RFC 9470 ``insufficient_user_authentication`` with the acr to ask for;
8. it carries the scope of the area called (admin:users, admin:clients, admin:keys,
   admin:audit): otherwise 403 ``insufficient_scope`` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

from flask import request

from idp.assurance import ACR_PHR
from idp.context import RequestContext
from idp.keys.jose import MAX_JWT_LENGTH, InvalidJwt
from idp.admin.problems import ApiError
from idp.models import User
from idp.web.requests import request_context, services, settings

SCOPES = ("admin:users", "admin:clients", "admin:keys", "admin:audit")
REQUIRED_ACR = ACR_PHR

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Caller:
    """The administrator behind the request, and what their token says."""

    user: User = field(repr=False)
    claims: dict[str, Any] = field(repr=False)
    ctx: RequestContext

    @property
    def id(self) -> str:
        return self.user.id


def _invalid_token(description: str) -> ApiError:
    return ApiError(401, "invalid_token", description,
                    challenge={"error": "invalid_token", "error_description": description})


def _bearer_value() -> str:
    if "access_token" in request.args or (request.mimetype == "application/x-www-form-urlencoded"
                                          and "access_token" in request.form):
        description = "Send the access token in the Authorization header only."
        raise ApiError(400, "invalid_request", description,
                       challenge={"error": "invalid_request", "error_description": description})
    headers = request.headers.getlist("Authorization")
    if not headers:
        # RFC 6750 §3.1: no credentials at all, so no error code in the challenge.
        raise ApiError(401, "unauthorized", "An access token is required: Authorization: Bearer <token>.",
                       challenge={})
    if len(headers) > 1:
        description = "Send one Authorization header."
        raise ApiError(400, "invalid_request", description,
                       challenge={"error": "invalid_request", "error_description": description})
    scheme, _, value = headers[0].partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value or " " in value:
        description = "Use the Bearer authorization scheme with one access token."
        raise ApiError(401, "invalid_token", description,
                       challenge={"error": "invalid_token", "error_description": description})
    if len(value) > MAX_JWT_LENGTH:
        raise _invalid_token("The access token is not valid.")
    return value


def authenticate(scope: str) -> Caller:
    """The checks in the module docstring; ApiError at the first that fails."""
    if scope not in SCOPES:  # pragma: no cover - a programming error in a view
        raise AssertionError(f"unknown admin scope {scope}")
    token = _bearer_value()
    s = services()
    try:
        claims = s.token_minter.verify(token)
    except (InvalidJwt, ValueError, TypeError):
        # Malformed, forged, expired, or signed by a key that was retired.
        raise _invalid_token("The access token is not valid.") from None
    aud = claims.get("aud")
    audiences = aud if isinstance(aud, list) else [aud]
    if settings().admin_audience not in audiences:
        raise _invalid_token("The access token is not meant for the admin API.")
    record = s.oauth_tokens.access_token(claims.get("jti"))
    if record is None:
        raise _invalid_token("The access token has been revoked or has expired.")
    subject = claims.get("sub")
    if record.user_id is None or not isinstance(subject, str) or subject != record.user_id or "acr" not in claims:
        raise _invalid_token("The admin API needs a token issued to a person, not to a client.")
    if s.clients.get(claims.get("client_id")) is None or claims.get("client_id") != record.client_id:
        raise _invalid_token("The client this token was issued to is disabled.")
    user = s.accounts.get(subject)
    if user is None or not user.active:
        raise _invalid_token("The access token has been revoked or has expired.")
    if not user.is_admin:
        description = "The signed-in person is not an administrator."
        raise ApiError(403, "insufficient_scope", description,
                       challenge={"error": "insufficient_scope", "error_description": description, "scope": scope})
    acr = claims.get("acr")
    # Exact match: phr is the strongest level, and an unknown acr proves nothing.
    if acr != REQUIRED_ACR:
        # RFC 9470 §3: tell the client which acr to ask /authorize for.
        description = "A phishing-resistant sign-in (a passkey) is required."
        raise ApiError(401, "insufficient_user_authentication", description, challenge={
            "error": "insufficient_user_authentication", "error_description": description, "acr_values": REQUIRED_ACR,
        })
    granted = str(claims.get("scope", "")).split()
    if scope not in granted:
        description = f"This call needs the {scope} scope."
        raise ApiError(403, "insufficient_scope", description,
                       challenge={"error": "insufficient_scope", "error_description": description, "scope": scope})
    return Caller(user=user, claims=claims, ctx=request_context())


def require(scope: str) -> Callable[[F], F]:
    """Decorate a view: it receives ``caller`` (keyword) once the token passed."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            caller = authenticate(scope)
            return view(*args, caller=caller, **kwargs)

        wrapper.admin_scope = scope  # type: ignore[attr-defined]  # read by the OpenAPI test
        return wrapper  # type: ignore[return-value]

    return decorate
