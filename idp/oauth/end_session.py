"""RP-initiated logout: OpenID Connect RP-Initiated Logout 1.0 (Authlib's EndSessionEndpoint).

The person always confirms with a button (a link or an <img> must not sign anyone
out); the POST ends the SSO session, revokes every token that session led to, and
redirects to the ``post_logout_redirect_uri`` only when it is registered for the client
and an ``id_token_hint`` we signed names that client (§3).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from authlib.oauth2.rfc6749.errors import InvalidRequestError, OAuth2Error
from authlib.oidc.rpinitiated import EndSessionEndpoint as _EndSessionEndpoint
from flask import Blueprint, Response, render_template, request

from idp.errors import InvalidInput
from idp.keys.jose import InvalidJwt
from idp.oauth.authorize import form_action_sources
from idp.oauth.server import authorization_server, parameter_problem
from idp.web import sso
from idp.web.requests import request_context, services
from idp.web.security import csrf, widen_csp

bp = Blueprint("oauth_end_session", __name__)


class EndSessionEndpoint(_EndSessionEndpoint):
    def get_server_jwks(self) -> dict[str, Any]:
        return services().signing_keys.ring().jwks()

    def _validate_id_token_hint(self, id_token_hint: str) -> dict[str, Any]:
        # Our own verification (key by kid, its algorithm only); expiry is not checked:
        # RP-Initiated Logout §2 says expired ID tokens are acceptable hints.
        try:
            return services().token_minter.verify(id_token_hint, typ=None, check_exp=False)
        except InvalidJwt:
            raise InvalidRequestError("The id_token_hint is not a valid ID token from this provider.") from None

    def end_session(self, end_session_request: Any) -> None:
        record = sso.current()
        if record is None:
            return
        revoked = services().oauth_tokens.revoke_for_session(record.id)
        services().sessions.end(record, reason="rp_logout", ctx=request_context())
        client = end_session_request.client
        services().audit.record(
            "signout", ctx=request_context(), user_id=record.user_id, session_id=record.id,
            client_id=client.get_client_id() if client else None, tokens_revoked=revoked,
        )


@bp.route("/end-session", methods=["GET", "POST"])
@csrf.exempt
def end_session():  # type: ignore[no-untyped-def]
    problem = parameter_problem(request.args, request.form)
    if problem:
        raise InvalidInput(problem)
    server = authorization_server()
    try:
        validated = server.validate_endpoint_request(EndSessionEndpoint.ENDPOINT_NAME)
    except OAuth2Error as error:
        raise InvalidInput(f"The sign-out request is invalid: {error.get_error_description()}") from None
    confirmed = request.method == "POST" and "csrf_token" in request.form
    if not confirmed:
        # GET, or a form post from the relying party itself: ask first.
        if validated.redirect_uri:
            widen_csp("form-action", *form_action_sources(validated.redirect_uri))
        return render_template(
            "end_session.html",
            client=validated.client.row if validated.client else None,
            signed_in=sso.current() is not None,
            action=request.path + "?" + urlencode(
                [(k, v) for k, v in request.values.items(multi=True) if k != "csrf_token"]
            ),
        )
    csrf.protect()
    response = server.create_endpoint_response(EndSessionEndpoint.ENDPOINT_NAME, validated)
    services().db.commit()
    if response is None:
        response = Response(render_template("end_session.html", done=True))
    sso.clear_cookie(response)
    return response
