"""Second-factor pages and the passkey JSON endpoints (issue 4). Thin: parse, call, render.

- ``/mfa``: the second-factor step (and RFC 9470 step-up: ``acr`` / ``max_age`` on the
  query raise what is needed; only methods that reach it are offered).
- ``/mfa/setup``, ``/mfa/email-proof``: binding needs a mailed proof in this browser first.
- ``/mfa/totp/new``, ``/mfa/passkeys/*``: enrolment; ``/passkey/signin/*``: usernameless.
- ``/mfa/factors/...``, ``/mfa/recovery-codes/...``: rename, remove, regenerate.

These views opt out of the assurance gate (``login_required(partial=True)``) because they
are how a session reaches it; each checks by itself what it lets a session do.
"""

from __future__ import annotations

import base64
import io
import json
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import segno
from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, session, url_for

from idp import assurance
from idp.errors import IdpError, InvalidInput, InvalidToken
from idp.mfa.errors import (
    FactorNotAllowed,
    InvalidCode,
    PasskeyRejected,
    ProofRequired,
    ReauthRequired,
    TooManyAttempts,
)
from idp.mfa.policy import METHOD_RECOVERY, METHOD_TOTP, methods_reaching, passkey_amr
from idp.models import SsoSession, User
from idp.oauth.interaction import required_acr  # the authorization endpoint's own rule
from idp.web import sso
from idp.web.requests import form_text, request_context, services, settings

bp = Blueprint("mfa", __name__)

_CHALLENGE_KEY = "mfa_webauthn_challenge"
_TOTP_PENDING_KEY = "mfa_totp_pending"
_MAX_NAME = 64


# ------------------------------------------------------------------- helpers
def _next() -> str:
    return sso.safe_next(request.values.get("next"))


def _requested_acr() -> str | None:
    """An explicit ``acr`` on /mfa, else what the authorization request in ``next`` needs."""
    value = request.values.get("acr")
    if value in assurance.ACR_VALUES:
        return value
    return _acr_of_authorization_request(_next())


def _acr_of_authorization_request(next_url: str) -> str | None:
    """RFC 9470 step-up: /authorize sends a weak session here with only ``next``; read its
    ``acr_values`` and the client's minimum the way the authorization endpoint does, so
    the methods offered are the ones that will satisfy it (and no redirect loop starts)."""
    parts = urlsplit(next_url)
    if parts.path != "/authorize" or not parts.query:
        return None
    params = dict(parse_qsl(parts.query))
    acr_values = params.get("acr_values", "").split()
    clients = getattr(services(), "clients", None)
    client = clients.get(params.get("client_id")) if clients is not None and params.get("client_id") else None
    if client is None:
        known = [a for a in acr_values if a in assurance.ACR_VALUES]
        return min(known, key=assurance.rank) if known else None
    return required_acr(acr_values=acr_values, client=client, mfa_policy=settings().mfa_policy)


def _max_age() -> int | None:
    raw = request.values.get("max_age", "")
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise InvalidInput("max_age must be a whole number of seconds.")
    return int(raw)


def _signed_in() -> tuple[SsoSession, User]:
    record, user = sso.current(), sso.current_user()
    assert record is not None and user is not None  # login_required ran first
    return record, user


def _json_body() -> dict[str, Any]:
    if request.mimetype != "application/json":
        raise InvalidInput("Send this request as JSON.")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # absurdly nested input
        data = None
    if not isinstance(data, dict):
        raise InvalidInput("The request body is not a JSON object.")
    return data


def _credential(data: dict[str, Any]) -> dict[str, Any]:
    credential = data.get("credential")
    if not isinstance(credential, dict):
        raise InvalidInput("The request has no credential.")
    return credential


def _json_session() -> tuple[SsoSession, User]:
    """JSON endpoints answer 401 rather than redirecting a script to the sign-in page."""
    record, user = sso.current(), sso.current_user()
    if record is None or user is None:
        abort(401)
    return record, user


def _commit_then(error: IdpError) -> IdpError:
    """Failures are audited and challenges consumed even though the request fails."""
    services().db.commit()
    return error


def _elevated(response: Response, secret: str) -> Response:
    services().db.commit()
    sso.set_cookie(response, secret)
    return response


def _json_redirect(response: Response) -> Response:
    """A redirect (with its cookies) as JSON, for fetch(): the script navigates."""
    location = response.headers.pop("Location", "/")
    response.status_code = 200
    response.mimetype = "application/json"
    response.set_data(json.dumps({"redirect": location}))
    return response


def _challenge_page(status: int = 200, **context: Any):  # type: ignore[no-untyped-def]
    # The form's redirect chain may end at the client (/mfa → /authorize → redirect_uri):
    # Chrome applies form-action to every hop, so the client's checked URI is allowed.
    from idp.oauth.authorize import widen_form_action_for_next  # lazy: it imports idp.web

    widen_form_action_for_next()
    return render_template("mfa/challenge.html", **context), status


def _binding_allowed(record: SsoSession, user: User) -> bool:
    s = services()
    return s.step_up.binding_allowed(record, s.step_up.factors(user), has_proof=s.enrolment.has_proof(record))


def _factor_name(default: str) -> str:
    name = " ".join(form_text("name", max_length=_MAX_NAME * 4).split())[:_MAX_NAME]
    return name or default


def _qr_data_uri(uri: str) -> str:
    """The otpauth:// URI as a standalone SVG (with its namespace, as an <img> needs it),
    made here: the secret never goes to a QR service, and CSP img-src data: allows it."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="svg", scale=5, border=2, dark="#1b1f24", light="#ffffff")
    return "data:image/svg+xml;base64," + base64.b64encode(buffer.getvalue()).decode()


def _after_first_binding(user: User, next_url: str) -> str:
    """Where to go after a factor was bound: the recovery codes once, else onwards."""
    if not services().recovery_codes.has_set(user):
        return url_for("mfa.first_recovery_codes", next=next_url)
    return next_url


# --------------------------------------------------------- second-factor step
@bp.get("/mfa")
@sso.login_required(partial=True)
def second_factor():  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    s = services()
    next_url = _next()
    needed = s.step_up.needed(_requested_acr())
    fresh = request.args.get("fresh") == "1"
    if not fresh and s.step_up.satisfied(record, needed, max_age=_max_age()):
        return redirect(next_url)
    factors = s.step_up.factors(user)
    if not factors.any and not factors.recovery_remaining:
        return redirect(url_for("mfa.setup", next=next_url))
    return _challenge_page(
        methods=methods_reaching(needed, factors),
        next=next_url,
        acr=_requested_acr() or "",
        max_age=request.args.get("max_age", "")[:9],
        fresh="1" if fresh else "",
        needed=needed,
    )


@bp.post("/mfa")
@sso.login_required(partial=True)
def verify_code():  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    s = services()
    ctx = request_context()
    next_url = _next()
    method = form_text("method", max_length=16) or METHOD_TOTP
    needed = s.step_up.needed(_requested_acr())
    factors = s.step_up.factors(user)
    methods = methods_reaching(needed, factors)
    if method not in (METHOD_TOTP, METHOD_RECOVERY) or method not in methods:
        raise InvalidInput("That sign-in method cannot be used here.")
    try:
        s.step_up.check_throttle(user)
    except TooManyAttempts as error:
        raise _commit_then(error) from None
    code = form_text("code", max_length=64)
    factor_ref = None
    if method == METHOD_TOTP:
        try:
            factor_ref = f"totp:{s.totp.verify(user, code).id}"
        except InvalidCode:
            factor_ref = None
    elif s.recovery_codes.use(user, code):
        factor_ref = METHOD_RECOVERY
        s.audit.record("mfa.recovery_code_used", ctx=ctx, user_id=user.id, session_id=record.id,
                       remaining=s.recovery_codes.remaining(user))
    if factor_ref is None:
        ended = s.step_up.record_failure(record, method=method, ctx=ctx)
        s.db.commit()
        if ended:
            # Issue 4: five wrong codes end the attempt; the password has to be entered again.
            flash("Too many wrong codes. Sign in again.")
            response = redirect(url_for("auth.login", next=next_url))
            sso.clear_cookie(response)
            return response
        return _challenge_page(
            400, methods=methods, next=next_url, acr=_requested_acr() or "",
            max_age=request.values.get("max_age", "")[:9], fresh=request.values.get("fresh", "")[:1],
            needed=needed, error=InvalidCode.public_message, method=method,
        )
    secret = s.step_up.elevate(record, amr=[assurance.AMR_OTP], factor_ref=factor_ref, ctx=ctx)
    return _elevated(redirect(next_url), secret)


@bp.post("/mfa/passkey/options")
@sso.login_required(partial=True)
def passkey_second_factor_options():  # type: ignore[no-untyped-def]
    _record, user = _json_session()
    try:
        options, challenge_id = services().passkeys.authentication_options(user)
    except FactorNotAllowed as error:
        raise _commit_then(error) from None
    services().db.commit()
    session[_CHALLENGE_KEY] = challenge_id
    return jsonify(publicKey=options)


@bp.post("/mfa/passkey/verify")
@sso.login_required(partial=True)
def passkey_second_factor_verify():  # type: ignore[no-untyped-def]
    record, user = _json_session()
    s = services()
    data = _json_body()
    next_url = sso.safe_next(data.get("next") if isinstance(data.get("next"), str) else None)
    try:
        use = s.passkeys.authenticate(
            session.pop(_CHALLENGE_KEY, None), _credential(data), expected_user_id=user.id, ctx=request_context()
        )
    except PasskeyRejected as error:
        raise _commit_then(error) from None
    secret = s.step_up.elevate(
        record, amr=passkey_amr(use.user_verified), factor_ref=f"passkey:{use.credential.id}", ctx=request_context()
    )
    return _json_redirect(_elevated(redirect(next_url), secret))


# ------------------------------------------------------ usernameless sign-in
@bp.post("/passkey/signin/options")
def passkey_signin_options():  # type: ignore[no-untyped-def]
    options, challenge_id = services().passkeys.authentication_options(None)
    services().db.commit()
    session[_CHALLENGE_KEY] = challenge_id
    return jsonify(publicKey=options)


@bp.post("/passkey/signin/verify")
def passkey_signin_verify():  # type: ignore[no-untyped-def]
    s = services()
    ctx = request_context()
    data = _json_body()
    next_url = sso.safe_next(data.get("next") if isinstance(data.get("next"), str) else None)
    try:
        use = s.passkeys.authenticate(session.pop(_CHALLENGE_KEY, None), _credential(data),
                                      expected_user_id=None, ctx=ctx)
        user = s.accounts.get(use.user_id)
        if user is None or not user.active or not user.email_verified:
            s.audit.record("passkey.failed", ctx=ctx, user_id=use.user_id, reason="account not usable")
            raise PasskeyRejected(detail="account disabled or unverified")
    except PasskeyRejected as error:
        raise _commit_then(error) from None
    s.audit.record("signin.passkey_ok", ctx=ctx, user_id=user.id, credential=use.credential.id)
    # A discoverable passkey with user verification: possession + PIN/biometric (RFC 8176).
    response = sso.sign_in(user, amr=passkey_amr(True), next_url=next_url)
    # Remember which factor started the new session (removing it later needs another one).
    record = s.sessions.resolve(_cookie_set_by(response))
    if record is not None:
        s.step_up.mark_verified(record, factor_ref=f"passkey:{use.credential.id}")
        s.db.commit()
    return _json_redirect(response)


def _cookie_set_by(response: Response) -> str | None:
    jar = SimpleCookie()
    for header in response.headers.getlist("Set-Cookie"):
        jar.load(header)
    morsel = jar.get(sso.cookie_name())
    return morsel.value if morsel is not None else None


# ------------------------------------------------------------------ enrolment
@bp.get("/mfa/setup")
@sso.login_required(partial=True)
def setup():  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    s = services()
    next_url = _next()
    factors = s.step_up.factors(user)
    if factors.any and not s.step_up.satisfied(record, assurance.ACR_MFA):
        # An account with a factor proves it first; setup never replaces the second step.
        return redirect(url_for("mfa.second_factor", next=url_for("mfa.setup", next=next_url)))
    has_proof = s.enrolment.has_proof(record)
    return render_template(
        "mfa/setup.html",
        next=next_url,
        has_proof=has_proof,
        allowed=s.step_up.binding_allowed(record, factors, has_proof=has_proof),
        factors=factors,
        email=user.email,
    )


@bp.post("/mfa/setup/email")
@sso.login_required(partial=True)
def send_proof():  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    try:
        services().enrolment.request_proof(user, record, next_url=_next(), ctx=request_context())
    except IdpError as error:
        raise _commit_then(error) from None
    services().db.commit()
    return render_template("mfa/proof_sent.html", email=user.email, next=_next())


@bp.route("/mfa/email-proof", methods=["GET", "POST"])
@sso.login_required(partial=True)
def email_proof():  # type: ignore[no-untyped-def]
    record, _user = _signed_in()
    # GET asks, POST spends: a mail scanner that fetches links must not burn the token.
    if request.method == "GET":
        token = request.args.get("token", "")
        if not token or len(token) > 128:
            raise InvalidToken()
        return render_template("mfa/email_proof.html", token=token, next=_next())
    try:
        services().enrolment.use_proof(form_text("token", max_length=128), record, ctx=request_context())
    except InvalidToken as error:
        raise _commit_then(error) from None
    services().db.commit()
    return redirect(url_for("mfa.setup", next=_next()))


def _require_binding(record: SsoSession, user: User) -> None:
    if not _binding_allowed(record, user):
        services().audit.record("mfa.binding_refused", ctx=request_context(), user_id=user.id, session_id=record.id,
                                path=request.path)
        services().db.commit()
        raise ProofRequired()


@bp.route("/mfa/totp/new", methods=["GET", "POST"])
@sso.login_required(partial=True)
def totp_new():  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    s = services()
    next_url = _next()
    if not _binding_allowed(record, user):
        return redirect(url_for("mfa.setup", next=next_url))
    if request.method == "GET":
        try:
            pending = s.totp.begin(user)
        except FactorNotAllowed as error:
            raise _commit_then(error) from None
        s.db.commit()
        session[_TOTP_PENDING_KEY] = pending.id
        return _totp_page(user, pending.id, next_url)
    pending_id = session.get(_TOTP_PENDING_KEY) or ""
    ctx = request_context()
    try:
        authenticator = s.totp.confirm(user, pending_id, form_text("code", max_length=64),
                                       name=_factor_name("Authenticator app"))
    except InvalidCode as error:
        s.step_up.record_failure(record, method="totp_enrolment", ctx=ctx)
        s.db.commit()
        if s.totp.pending(user, pending_id) is None:
            raise
        return _totp_page(user, pending_id, next_url, error=error.public_message), 400
    session.pop(_TOTP_PENDING_KEY, None)
    s.enrolment.notify(user, event="mfa.factor_added", kind="authenticator app", name=authenticator.name, ctx=ctx,
                       session_id=record.id)
    # The correct code proved possession of the new authenticator, in this session.
    secret = s.step_up.elevate(record, amr=[assurance.AMR_OTP], factor_ref=f"totp:{authenticator.id}", ctx=ctx)
    return _elevated(redirect(_after_first_binding(user, next_url)), secret)


def _totp_page(user: User, pending_id: str, next_url: str, *, error: str | None = None) -> str:
    s = services()
    pending = s.totp.pending(user, pending_id)
    if pending is None:
        raise InvalidCode("This set-up has expired. Start again.")
    return render_template(
        "mfa/totp_new.html",
        secret=s.totp.secret(pending),
        qr=_qr_data_uri(s.totp.provisioning_uri(pending, account=user.email)),
        next=next_url,
        error=error,
    )


@bp.post("/mfa/passkeys/options")
@sso.login_required(partial=True)
def passkey_register_options():  # type: ignore[no-untyped-def]
    record, user = _json_session()
    _require_binding(record, user)
    try:
        options, challenge_id = services().passkeys.registration_options(user)
    except FactorNotAllowed as error:
        raise _commit_then(error) from None
    services().db.commit()
    session[_CHALLENGE_KEY] = challenge_id
    return jsonify(publicKey=options)


@bp.post("/mfa/passkeys/verify")
@sso.login_required(partial=True)
def passkey_register_verify():  # type: ignore[no-untyped-def]
    record, user = _json_session()
    s = services()
    ctx = request_context()
    _require_binding(record, user)
    data = _json_body()
    next_url = sso.safe_next(data.get("next") if isinstance(data.get("next"), str) else None)
    raw_name = data.get("name")
    name = " ".join(raw_name.split())[:_MAX_NAME] if isinstance(raw_name, str) else ""
    try:
        credential = s.passkeys.register(user, session.pop(_CHALLENGE_KEY, None), _credential(data),
                                         name=name or "Passkey", ctx=ctx)
    except PasskeyRejected as error:
        raise _commit_then(error) from None
    s.enrolment.notify(user, event="mfa.factor_added", kind="passkey", name=credential.name, ctx=ctx,
                       session_id=record.id)
    # Registration proved possession (and, with UV, the PIN/biometric) in this session.
    # It does not count as the fresh re-authentication that removing a factor needs.
    secret = s.step_up.elevate(record, amr=passkey_amr(False), factor_ref=f"passkey:{credential.id}", ctx=ctx)
    return _json_redirect(_elevated(redirect(_after_first_binding(user, next_url)), secret))


# ------------------------------------------------------------ recovery codes
@bp.get("/mfa/recovery-codes/first")
@sso.login_required
def first_recovery_codes():  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    s = services()
    next_url = _next()
    if s.recovery_codes.has_set(user):
        return redirect(next_url)  # shown once: never again from here
    try:
        # Only right after a factor was bound or used here: under "optional" a password
        # session passes login_required, and codes would lift it to two factors.
        s.step_up.check_recent(record)
    except ReauthRequired:
        return redirect(next_url)
    codes = s.recovery_codes.regenerate(user)
    s.enrolment.notify(user, event="mfa.recovery_codes_generated", kind="recovery codes", name="10 codes",
                       ctx=request_context())
    s.db.commit()
    return render_template("mfa/recovery_codes.html", codes=codes, next=next_url)


@bp.post("/mfa/recovery-codes")
@sso.login_required
def regenerate_recovery_codes():  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    s = services()
    if not s.step_up.factors(user).any:
        raise FactorNotAllowed("Add an authenticator app or a passkey first.")
    try:
        s.step_up.check_recent(record)
    except ReauthRequired:
        flash("Confirm it is you first, then create new recovery codes.")
        return redirect(url_for("mfa.second_factor", next=url_for("account.overview"), fresh="1"))
    codes = s.recovery_codes.regenerate(user)
    s.enrolment.notify(user, event="mfa.recovery_codes_generated", kind="recovery codes", name="10 codes",
                       ctx=request_context(), session_id=record.id)
    s.db.commit()
    return render_template("mfa/recovery_codes.html", codes=codes, next=url_for("account.overview"))


# ------------------------------------------------------ rename and remove
def _factor(user: User, kind: str, factor_id: str):  # type: ignore[no-untyped-def]
    s = services()
    if kind == "totp":
        found = s.totp.get(user, factor_id)
    elif kind == "passkey":
        found = s.passkeys.get(user, factor_id)
    else:
        found = None
    if found is None:
        abort(404)
    return found


@bp.post("/mfa/factors/<kind>/<factor_id>/rename")
@sso.login_required
def rename_factor(kind: str, factor_id: str):  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    factor = _factor(user, kind, factor_id)
    if not services().step_up.satisfied(record, assurance.ACR_MFA):
        return redirect(url_for("mfa.second_factor", next=url_for("account.overview"), fresh="1"))
    factor.name = _factor_name(factor.name)
    services().enrolment.notify(user, event="mfa.factor_renamed", kind=kind, name=factor.name,
                                ctx=request_context(), session_id=record.id)
    services().db.commit()
    return redirect(url_for("account.overview"))


@bp.post("/mfa/factors/<kind>/<factor_id>/remove")
@sso.login_required
def remove_factor(kind: str, factor_id: str):  # type: ignore[no-untyped-def]
    record, user = _signed_in()
    s = services()
    factor = _factor(user, kind, factor_id)
    try:
        s.step_up.check_removal(record, s.step_up.factors(user), factor_ref=f"{kind}:{factor.id}")
    except ReauthRequired:
        flash("Confirm it is you with another sign-in method, then remove it again.")
        return redirect(url_for("mfa.second_factor", next=url_for("account.overview"), fresh="1"))
    name = factor.name
    if kind == "totp":
        s.totp.remove(factor)
    else:
        s.passkeys.remove(factor)
    s.enrolment.notify(user, event="mfa.factor_removed", kind=kind, name=name, ctx=request_context(),
                       session_id=record.id)
    s.db.commit()
    flash(f"Removed “{name}”.")
    return redirect(url_for("account.overview"))


# --------------------------------------------------------- account section
@bp.app_context_processor
def _account_methods() -> dict[str, Any]:
    def mfa_methods() -> dict[str, Any]:
        record, user = sso.current(), sso.current_user()
        if record is None or user is None:
            return {}
        s = services()
        factors = s.step_up.factors(user)
        return {
            "factors": factors,
            "can_bind": _binding_allowed(record, user),
            "setup_url": url_for("mfa.setup", next=url_for("account.overview")),
        }

    return {"mfa_methods": mfa_methods}
