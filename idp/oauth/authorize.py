"""The authorization endpoint: RFC 6749 §3.1 and §4.1, OpenID Connect Core §3.1.2.

Authlib validates the request (client, exact redirect URI, response type, PKCE, nonce);
``interaction.needs_interaction`` decides whether the person must sign in, step up or
consent first; only then is a code issued. Until the redirect URI is known to belong to
the client, every error is a page here and never a redirect (RFC 6749 §4.1.2.1); after
that, errors go back to the client. Every redirect to the client carries ``iss``
(RFC 9207) and the untouched ``state``.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.common.urls import add_params_to_uri
from authlib.oauth2.rfc6749.errors import AccessDeniedError, InvalidRequestError, OAuth2Error
from authlib.oidc.core.errors import ConsentRequiredError, InteractionRequiredError, LoginRequiredError
from flask import Blueprint, Response, redirect, render_template, request, url_for

from idp.assurance import acr_for
from idp.db import utcnow
from idp.errors import InvalidInput
from idp.oauth.grants import requested_resources
from idp.oauth.resources import InvalidTargetError
from idp.oauth.interaction import Interaction, login_url, needs_interaction, required_acr, step_up_url
from idp.oauth.models import Client
from idp.oauth.server import authorization_server, parameter_problem
from idp.oauth.tokens import Subject
from idp.web import sso
from idp.web.requests import request_context, services, settings
from idp.web.protection import new_device_redirect
from idp.web.security import widen_csp

bp = Blueprint("oauth_authorize", __name__)

AUTHORIZE_PATH = "/authorize"
MAX_AGE_LIMIT = 10 * 365 * 24 * 3600
_PROMPT_NONE = {
    Interaction.LOGIN: LoginRequiredError,
    Interaction.STEP_UP: InteractionRequiredError,
    Interaction.CONSENT: ConsentRequiredError,
}
SCOPE_DESCRIPTIONS = {
    "openid": "Know who you are when you sign in (a stable identifier, not your email)",
    "email": "See your email address",
    "offline_access": "Stay connected when you are not using it",
}


@bp.route(AUTHORIZE_PATH, methods=["GET", "POST"])
def authorize():  # type: ignore[no-untyped-def]
    problem = parameter_problem(request.args)
    if problem:
        raise InvalidInput(problem)
    if request.method == "POST" and set(request.form) - {"csrf_token", "decision"}:
        raise InvalidInput("Unexpected fields in the consent form.")

    record = sso.current()
    user = sso.current_user()
    subject = None
    if record is not None and user is not None:
        subject = Subject(
            user=user, session_id=record.id, auth_time=record.auth_time, amr=list(record.amr), acr=acr_for(record.amr)
        )

    server = authorization_server()
    try:
        grant = server.get_consent_grant(end_user=subject)
    except OAuth2Error as error:
        return _error(error)
    client: Client = grant.client
    args = request.args
    state = args.get("state")
    redirect_uri = grant.redirect_uri

    try:
        requested_resources(args.getlist("resource"))
    except InvalidTargetError as error:
        error.state, error.redirect_uri = state, redirect_uri
        return _error(error)
    if args.get("response_mode", "query") != "query":
        return _error(InvalidRequestError("Only response_mode=query is supported.", state=state, redirect_uri=redirect_uri))
    max_age = _max_age(args.get("max_age"))
    if max_age == -1:
        return _error(InvalidRequestError("max_age must be a non-negative integer.", state=state, redirect_uri=redirect_uri))
    prompt = frozenset(args.get("prompt", "").split())

    decision = request.form.get("decision") if request.method == "POST" else None
    if request.method == "POST" and decision not in ("allow", "deny"):
        raise InvalidInput("Choose allow or deny.")
    if decision == "deny":
        services().audit.record(
            "consent.denied", ctx=request_context(), user_id=subject.id if subject else None, client_id=client.id
        )
        services().db.commit()
        return _error(AccessDeniedError(state=state, redirect_uri=redirect_uri))

    acr_values = args.get("acr_values", "").split()
    needed = needs_interaction(
        session=record if subject else None,
        client=client.row,
        prompt=prompt,
        max_age=max_age,
        acr_values=acr_values,
        mfa_policy=settings().mfa_policy,
        consented=subject is not None and services().consents.covers(subject.id, client.id, grant.request.scope),
        now=utcnow(),
    )
    if needed is Interaction.CONSENT and decision == "allow" and subject is not None:
        services().consents.grant(subject.id, client.id, grant.request.scope, ctx=request_context())
        needed = None

    if needed in (None, Interaction.CONSENT) and subject is not None:
        # Unrecognised device that has not yet given its second proof (issue 6): no code.
        detour = new_device_redirect()
        if detour is not None:
            if "none" in prompt:
                return _error(InteractionRequiredError(state=state, redirect_uri=redirect_uri))
            return detour

    if needed in (None, Interaction.CONSENT) and subject is not None and subject.user.must_change_password:
        # After sign-in and any step-up (so a password alone never reaches the change
        # page), before consent and code: a breached or operator-reset password is
        # replaced first, then the person comes back here.
        if "none" in prompt:
            return _error(InteractionRequiredError(state=state, redirect_uri=redirect_uri))
        return redirect(url_for("password.change", forced=1, next=continue_url()))

    if needed is not None:
        if "none" in prompt:
            return _error(_PROMPT_NONE[needed](state=state, redirect_uri=redirect_uri))
        continue_to = continue_url()
        if needed is Interaction.LOGIN:
            return redirect(login_url(continue_to, login_hint=args.get("login_hint")))
        if needed is Interaction.STEP_UP:
            acr = required_acr(acr_values=acr_values, client=client.row, mfa_policy=settings().mfa_policy)
            return redirect(step_up_url(continue_to, acr=acr))
        return _consent_page(client, grant.request.scope, redirect_uri)

    response = server.create_authorization_response(grant_user=subject, grant=grant)
    services().db.commit()
    return _with_iss(response)


def _max_age(raw: str | None) -> int | None:
    """None when absent, -1 when malformed."""
    if raw is None:
        return None
    if not raw.isascii() or not raw.isdigit() or int(raw) > MAX_AGE_LIMIT:
        return -1
    return int(raw)


def continue_url() -> str:
    """Where to resume after sign-in: this request, minus what the sign-in just satisfied.

    ``prompt=login`` and ``max_age`` are dropped, or the fresh session would be sent to
    sign in again forever; the client still sees ``auth_time`` in the ID token.
    """
    params = []
    for key, value in request.args.items(multi=True):
        if key == "max_age":
            continue
        if key == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        params.append((key, value))
    return AUTHORIZE_PATH + "?" + urlencode(params)


def _with_iss(response: Response) -> Response:
    if response.status_code in (302, 303) and "Location" in response.headers:
        response.headers["Location"] = add_params_to_uri(response.headers["Location"], [("iss", settings().issuer)])
    return response


def _error(error: OAuth2Error) -> Response:
    if error.redirect_uri:
        # The redirect URI was checked against the client's registration: tell the client.
        return _with_iss(authorization_server().handle_error_response(None, error))
    # Unknown client or unregistered redirect URI: never redirect (RFC 9700 §4.1).
    if error.error == "unsupported_response_type":
        description = "only response_type=code is supported."
    else:
        description = error.get_error_description() or "it is malformed."
    raise InvalidInput(f"The application sent an invalid sign-in request: {description}")


def _consent_page(client: Client, scope: str, redirect_uri: str) -> str:
    widen_csp("form-action", *form_action_sources(redirect_uri))
    scopes = [(s, SCOPE_DESCRIPTIONS.get(s, s)) for s in scope.split()]
    return render_template("consent.html", client=client.row, scopes=scopes, action=request.full_path)


def form_action_sources(redirect_uri: str) -> list[str]:
    """CSP sources that let a form post end in a redirect to ``redirect_uri``: Chrome
    enforces form-action on every redirect after a form submission."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return [f"{parts.scheme}://{parts.netloc}"] if parts.netloc else []
    return [f"{parts.scheme}:"] if parts.scheme else []


def widen_form_action_for_next() -> None:
    """Pages that take ``next=/authorize?...`` (sign-in, step-up) end in a redirect chain
    that may reach the client: allow its (validated) redirect URI as a form target."""
    next_url = request.args.get("next", "")
    if not next_url.startswith(AUTHORIZE_PATH + "?") or len(next_url) > 8192:
        return
    params = dict(parse_qsl(urlsplit(next_url).query))
    client = services().clients.get(params.get("client_id"))
    redirect_uri = params.get("redirect_uri", "")
    if client is not None and Client(client, services().clients).check_redirect_uri(redirect_uri):
        widen_csp("form-action", *form_action_sources(redirect_uri))
