"""Attack protection at the web edge: the password step's guard, recognised devices,
the new-device gate, mailed sign-in links, and /metrics.

The seam for the MFA pages (see idp/protection/README.md):
- ``is_recognised(request, user_id)``: the browser holds a device cookie for the account.
- ``second_factor_required(record)``: this SSO session began with a correct password on
  an unrecognised device and has not shown anything else since.
- ``new_device_redirect()``: for the gate (sso.login_required, the authorize view) to
  call: sends such a session to ``protection.new_device`` (which hands over to /mfa).
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlencode

from flask import Blueprint, Flask, Request, Response, g, redirect, render_template, request, url_for
from sqlalchemy import select

from idp import assurance
from idp.accounts.emails import normalize_email
from idp.crypto.tokens import looks_like_secret, sha256_hex
from idp.errors import InvalidCredentials, InvalidInput, InvalidToken
from idp.models import SsoSession, User
from idp.protection import Protection
from idp.protection.attack import Attempt
from idp.protection.links import SigninLinks
from idp.protection.metrics import CONTENT_TYPE
from idp.web import sso
from idp.web.requests import client_ip, form_text, registry, request_context, services, settings

bp = Blueprint("protection", __name__)

_NEW_DEVICE = "newdev:"


def protection() -> Protection:
    return registry().protection  # type: ignore[no-any-return]


# ----------------------------------------------------------- recognised devices
def is_recognised(req: Request, user_id: str) -> bool:
    """The browser of ``req`` completed a sign-in for this account (or used a mailed link)."""
    return protection().devices.recognised(req.cookies, user_id) is not None


def second_factor_required(record: SsoSession) -> bool:
    """A password-only session from an unrecognised device: it needs one more proof."""
    return protection().counters.get(_NEW_DEVICE + record.id) > 0


# ------------------------------------------------------------ the password step
class PasswordStep:
    """What /login asks attack protection, around AccountService.authenticate:

    ``check`` before argon2 (a refused attempt still costs one verification and reads
    exactly like a wrong password), ``failed`` and ``succeeded`` after it.
    """

    def __init__(self, username: str) -> None:
        p = protection()
        try:
            self.email: str | None = normalize_email(username)
        except InvalidInput:
            self.email = None  # authenticate() will say so; only the address rules apply
        self.user: User | None = services().accounts.by_email(self.email) if self.email else None
        device = p.devices.recognised(request.cookies, self.user.id) if self.user is not None else None
        self.attempt = Attempt(
            account=p.attack.account_key(self.email) if self.email else None,
            ip=client_ip() or "unknown",
            device=device.id if device else None,
        )

    def check(self, password: str) -> None:
        rule = protection().attack.check(self.attempt)
        if rule is None:
            return
        registry().hasher.verify_dummy(password)
        services().audit.record(
            "signin.blocked", ctx=request_context(), user_id=self.user.id if self.user else None,
            rule=rule, email=None if self.user else self.email,
        )
        raise InvalidCredentials(detail=f"refused by {rule}")

    def failed(self, error: Exception) -> None:
        if isinstance(error, InvalidCredentials):
            protection().attack.record_failure(
                self.attempt, audit=services().audit, ctx=request_context(),
                user_id=self.user.id if self.user else None,
            )

    def succeeded(self, user: User) -> None:
        p = protection()
        p.attack.record_success(self.attempt)
        if self.attempt.recognised:
            return
        # Issue 6: a correct password from a device we do not know always needs a second
        # proof (even under "optional"), and the owner hears of it at once.
        g.idp_new_device_user = user.id
        ctx = request_context()
        services().audit.record("signin.new_device", ctx=ctx, user_id=user.id)
        p.metrics.inc("idp_new_device_signins_total")
        services().mail.send(
            "new_signin",
            to=user.email,
            subject="New sign-in to your account",
            when=dt.datetime.now(dt.UTC).strftime("%d %B %Y, %H:%M UTC"),
            ip=ctx.ip or "unknown",
            browser=describe_browser(ctx.user_agent),
            account_url=f"{settings().issuer}/account",
            link_url=f"{settings().issuer}/login/link",
        )


_BROWSERS = (("Edg/", "Edge"), ("OPR/", "Opera"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome"),
             ("Safari/", "Safari"))
_SYSTEMS = (("Android", "Android"), ("iPhone", "iPhone"), ("iPad", "iPad"), ("Windows", "Windows"),
            ("Mac OS X", "macOS"), ("CrOS", "ChromeOS"), ("Linux", "Linux"))


def describe_browser(user_agent: str | None) -> str:
    """'Firefox on Windows' from a User-Agent, for people; the raw string is in the audit log."""
    ua = user_agent or ""
    browser = next((name for token, name in _BROWSERS if token in ua), None)
    system = next((name for token, name in _SYSTEMS if token in ua), None)
    if browser and system:
        return f"{browser} on {system}"
    cleaned = re.sub(r"[^\x20-\x7e]", "", ua)[:80]
    return browser or system or cleaned or "an unknown browser"


# ---------------------------------------------------------------- sign-in links
def _links() -> SigninLinks:
    s = settings()
    return SigninLinks(
        db=services().db, audit=services().audit, mail=services().mail, metrics=protection().metrics,
        issuer=s.issuer, lifetime_seconds=s.signin_link_seconds,
    )


# Links per account per quarter hour, whoever asks: the per-address limit (ip.signin_link)
# alone would let a botnet fill one person's inbox.
_LINKS_PER_ACCOUNT = 3
_LINK_WINDOW_SECONDS = 15 * 60


def _send_link(raw_email: str) -> None:
    ctx = request_context()
    try:
        account = protection().attack.account_key(normalize_email(raw_email))
    except InvalidInput:
        return
    if protection().counters.incr(f"links:{account}", ttl=_LINK_WINDOW_SECONDS) > _LINKS_PER_ACCOUNT:
        services().audit.record("signin_link.suppressed", ctx=ctx)
        return
    _links().send(raw_email, ctx=ctx)


@bp.route("/login/link", methods=["GET", "POST"])
def link_request():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return render_template("signin_link_request.html", username=request.args.get("login_hint", "")[:254])
    username = form_text("username", max_length=1024)
    _send_link(username)
    services().db.commit()
    # The same page whether or not the address has an account.
    return render_template("signin_link_sent.html", sent_to=username[:254])


@bp.get("/login/link/confirm")
def link_confirm_page():  # type: ignore[no-untyped-def]
    # GET shows a button; POST spends the link (mail scanners pre-fetch links).
    token = request.args.get("token", "")
    if not looks_like_secret(token):
        raise InvalidToken()
    return render_template("signin_link_confirm.html", token=token)


@bp.post("/login/link/confirm")
def link_confirm():  # type: ignore[no-untyped-def]
    ctx = request_context()
    try:
        user = _links().use(form_text("token", max_length=128), ctx=ctx)
    except InvalidToken:
        services().db.commit()
        raise
    protection().attack.mailbox_proven(user.email, ip=client_ip() or "unknown")
    g.idp_recognise_user = user.id
    current = sso.current()
    if current is not None and current.user_id == user.id:
        # The session waiting on this device now has its second proof.
        protection().counters.delete(_NEW_DEVICE + current.id)
        services().db.commit()
        return redirect(sso.safe_next(request.args.get("next")))
    services().db.commit()
    return redirect(url_for("auth.login", login_hint=user.email, device_confirmed=1))


# ------------------------------------------------------------- new-device gate
@bp.get("/login/new-device")
def new_device():  # type: ignore[no-untyped-def]
    next_url = sso.safe_next(request.args.get("next"))
    record, user = sso.current(), sso.current_user()
    if record is None or user is None:
        return redirect(url_for("auth.login", next=next_url))
    if not second_factor_required(record):
        return redirect(next_url)
    step_up = getattr(services(), "step_up", None)
    if step_up is not None and step_up.factors(user).any:
        # A second factor is enrolled: that is the proof; /mfa clears the mark.
        return redirect(url_for("mfa.second_factor", acr=assurance.ACR_MFA, next=next_url))
    return render_template("new_device.html", next=next_url, email=user.email)


@bp.post("/login/new-device")
def new_device_send_link():  # type: ignore[no-untyped-def]
    record, user = sso.current(), sso.current_user()
    if record is None or user is None:
        return redirect(url_for("auth.login"))
    _send_link(user.email)
    services().db.commit()
    return render_template("signin_link_sent.html", sent_to=user.email)


_GATE_EXEMPT = ("static", "protection.", "mfa.", "auth.login", "auth.logout", "health.", "metrics")


def new_device_redirect() -> Response | None:
    """The gate's one call (sso.login_required, the authorize view): where a session that
    still owes its new-device proof must go instead of this page, or None to proceed."""
    endpoint = request.endpoint or ""
    if not endpoint or endpoint.startswith(_GATE_EXEMPT) or not request.cookies.get(sso.cookie_name()):
        return None
    record = sso.current()
    if record is None or not second_factor_required(record):
        return None
    target = request.full_path if request.query_string and request.method == "GET" else request.path
    return redirect(url_for("protection.new_device") + "?" + urlencode({"next": target}))


# -------------------------------------------------------- the device cookie
def _sso_secret_set(response: Response) -> str | None:
    prefix = sso.cookie_name() + "="
    for header in response.headers.getlist("Set-Cookie"):
        if header.startswith(prefix):
            value = header[len(prefix):].split(";", 1)[0].strip('"')
            return value or None
    return None


def _set_device_cookie(response: Response, user_id: str) -> None:
    devices = protection().devices
    response.set_cookie(
        devices.name,
        devices.with_account(request.cookies, user_id),
        max_age=devices.max_age,
        path="/",
        secure=devices.secure,
        httponly=True,
        samesite="Lax",
    )


def _after(response: Response) -> Response:
    """Where sign-ins end, whoever's page started them (password, /mfa, passkey, link):
    a session that just began or was raised decides the device's standing."""
    recognise = g.pop("idp_recognise_user", None)
    # getlist, not `in`: Werkzeug builds an exception for every header it does not find.
    if recognise is None and not response.headers.getlist("Set-Cookie"):
        return response  # no sign-in ended here (every API call): nothing to decide
    secret = _sso_secret_set(response)
    if secret is not None and looks_like_secret(secret):
        record = services().db.scalar(select(SsoSession).where(SsoSession.token_hash == sha256_hex(secret)))
        if record is not None:
            counters = protection().counters
            password_only = assurance.acr_for(record.amr or []) == assurance.ACR_PWD
            if password_only and g.get("idp_new_device_user") == record.user_id:
                counters.incr(_NEW_DEVICE + record.id, ttl=settings().session_max_seconds)
            elif not password_only or is_recognised(request, record.user_id):
                counters.delete(_NEW_DEVICE + record.id)
                recognise = record.user_id
    if recognise is not None:
        _set_device_cookie(response, recognise)
    return response


# -------------------------------------------------------------------- metrics
def _metrics() -> Response:
    metrics = protection().metrics
    # The back-channel dispatcher is process-wide and counts its own outcomes.
    from idp.oauth.backchannel import default_dispatcher

    for outcome, count in default_dispatcher().counts().items():
        metrics.set("idp_backchannel_logout_total", count, outcome=outcome)
    return Response(metrics.render(), mimetype=None, content_type=CONTENT_TYPE)


def init_app(app: Flask) -> None:
    registry_ = app.extensions["idp"]
    _ = registry_.protection  # build now, in one thread (see Registry.protection)
    app.register_blueprint(bp)
    if registry_.settings.metrics_enabled:
        app.add_url_rule("/metrics", "metrics", _metrics)
    app.after_request(_after)
