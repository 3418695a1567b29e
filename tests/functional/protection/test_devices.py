"""Recognised devices: the cookie, the new-sign-in notice, the seam for the MFA gate,
and the mailed link that makes a device known."""

from __future__ import annotations

from flask import Flask

from idp.models import SsoSession
from idp.web import protection as web_protection
from tests.fixtures import Outbox, csrf_from, get_csrf

from .conftest import PASSWORD, attempt, audit_events, client_at, create_user
from .test_attack_protection import recognise, signed_in

CHROME_ANDROID = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 Chrome/126.0 Mobile Safari/537.36"


def outbox(app: Flask) -> Outbox:
    return Outbox(app.extensions["idp"].settings.mail_outbox)


def session_of(app: Flask, user_id: str) -> SsoSession:
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        return registry.services(db).sessions.active_for_user(user_id)[0]


def test_correct_password_on_a_new_device_mails_a_notice_and_owes_a_second_proof(make_app):
    app = make_app()
    user_id = create_user(app, "owner@example.com")
    phone = client_at(app, "127.0.0.110", user_agent=CHROME_ANDROID)
    assert signed_in(attempt(phone, "owner@example.com", PASSWORD))

    notices = [m for m in outbox(app).to("owner@example.com") if "New sign-in" in m["Subject"]]
    assert len(notices) == 1
    body = notices[0].get_body(preferencelist=("plain",)).get_content()
    assert "127.0.0.110" in body and "Chrome on Android" in body and "UTC" in body
    assert [e.user_id for e in audit_events(app, "signin.new_device")] == [user_id]

    # The seam for the MFA gate: this session still owes a proof; the browser is not known.
    with app.test_request_context("/account"):
        assert web_protection.second_factor_required(session_of(app, user_id))
    assert app.extensions["idp"].protection.devices.name not in {c.key for c in phone._cookies.values()}


def test_new_device_gate_sends_the_session_to_prove_itself_and_the_link_settles_it(make_app):
    app = make_app()
    user_id = create_user(app, "owner@example.com")
    phone = client_at(app, "127.0.0.111")
    attempt(phone, "owner@example.com", PASSWORD)
    page = phone.get("/login/new-device?next=/account")
    assert page.status_code == 200 and "we do not recognise this device" in page.get_data(as_text=True)
    response = phone.post("/login/new-device", data={"csrf_token": get_csrf(phone, "/login/new-device")})
    assert response.status_code == 200
    link = outbox(app).last_link("owner@example.com", "/login/link/confirm")
    path = link.removeprefix(app.extensions["idp"].settings.issuer)
    response = phone.post(path.split("?")[0] + "?next=/account",
                          data={"csrf_token": get_csrf(phone, path), "token": path.split("token=", 1)[1]})
    assert response.status_code == 302 and response.headers["Location"] == "/account"
    with app.test_request_context("/account"):
        assert not web_protection.second_factor_required(session_of(app, user_id))
    # From now on this browser is recognised: no notice, no proof owed.
    before = len(outbox(app).to("owner@example.com"))
    phone.post("/logout", data={"csrf_token": get_csrf(phone, "/logout")})
    assert signed_in(attempt(phone, "owner@example.com", PASSWORD))
    assert len(outbox(app).to("owner@example.com")) == before
    with app.test_request_context("/account"):
        assert not web_protection.second_factor_required(session_of(app, user_id))


def test_recognised_device_cookie_is_signed_host_prefixed_and_long_lived(make_app):
    app = make_app(issuer="https://idp.example")
    create_user(app, "owner@example.com")
    client = client_at(app, "127.0.0.112")
    site = {"base_url": "https://idp.example", "headers": {"Referer": "https://idp.example/login"}}

    def csrf(path: str) -> str:
        return csrf_from(client.get(path, **site).get_data(as_text=True))

    client.post("/login/link", data={"csrf_token": csrf("/login/link"), "username": "owner@example.com"}, **site)
    link = outbox(app).last_link("owner@example.com", "/login/link/confirm")
    path = link.removeprefix("https://idp.example")
    token = path.split("token=", 1)[1]
    response = client.post("/login/link/confirm", data={"csrf_token": csrf(path), "token": token}, **site)
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("__Host-idp_device="))
    assert "Secure" in cookie and "HttpOnly" in cookie and "Path=/" in cookie and "Domain" not in cookie
    assert "Max-Age=31536000" in cookie


def test_forged_or_foreign_device_cookie_is_not_recognised(make_app, tmp_path):
    app = make_app()
    user_id = create_user(app, "owner@example.com")
    devices = app.extensions["idp"].protection.devices
    genuine = devices.with_account({}, user_id)
    assert devices.recognised({devices.name: genuine}, user_id) is not None
    assert devices.recognised({devices.name: genuine}, "someone-else") is None
    assert devices.recognised({devices.name: genuine[:-2] + "xx"}, user_id) is None
    other_app = make_app(keys_dir=tmp_path / "other-keys")  # another KEK: another signing key
    assert other_app.extensions["idp"].protection.devices.recognised({devices.name: genuine}, user_id) is None


def test_used_or_unknown_sign_in_link_is_refused(make_app):
    app = make_app()
    create_user(app, "owner@example.com")
    client = client_at(app, "127.0.0.113")
    recognise(app, client, "owner@example.com")
    link = outbox(app).last_link("owner@example.com", "/login/link/confirm")
    token = link.split("token=", 1)[1]
    again = client.post("/login/link/confirm", data={"csrf_token": get_csrf(client, "/login"), "token": token})
    assert again.status_code == 400
    unknown = client.post("/login/link/confirm", data={"csrf_token": get_csrf(client, "/login"), "token": "A" * 43})
    assert unknown.status_code == 400


def test_sign_in_link_goes_only_to_verified_accounts_and_answers_the_same(make_app):
    app = make_app()
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        registry.services(db).accounts.create_by_operator("unverified@example.com", PASSWORD, verified=False)
        db.commit()
    client = client_at(app, "127.0.0.114")
    pages = []
    for email in ("nobody@example.com", "unverified@example.com"):
        response = client.post("/login/link", data={"csrf_token": get_csrf(client, "/login/link"), "username": email})
        pages.append(response.get_data(as_text=True).replace(email, "EMAIL"))
    assert pages[0] == pages[1]
    assert not [m for m in outbox(app).messages() if "sign-in link" in m["Subject"]]


def test_metrics_are_exposed_in_prometheus_text_format(make_app):
    app = make_app()
    client = client_at(app, "127.0.0.115")
    attempt(client, "nobody@example.com", "wrong password")
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert "# TYPE idp_signin_failures_total counter" in text
    assert "idp_signin_failures_total 1" in text


def test_gate_seam_keeps_a_new_device_session_off_authenticated_pages(make_app):
    """What the MFA gate gets by calling new_device_redirect(): wired here by hand,
    exactly as sso.login_required or the authorize view would call it."""
    app = make_app()
    app.before_request(web_protection.new_device_redirect)
    create_user(app, "owner@example.com")
    stranger = client_at(app, "127.0.0.116")
    assert signed_in(attempt(stranger, "owner@example.com", PASSWORD))
    response = stranger.get("/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login/new-device?next=")
    # A recognised device is not stopped.
    owner = client_at(app, "127.0.0.117")
    recognise(app, owner, "owner@example.com")
    assert signed_in(attempt(owner, "owner@example.com", PASSWORD))
    assert owner.get("/account").status_code == 200


def test_sign_in_links_cannot_flood_one_inbox_from_many_addresses(make_app):
    app = make_app()
    create_user(app, "owner@example.com")
    for n in range(6):
        client = client_at(app, f"127.0.0.{120 + n}")
        client.post("/login/link", data={"csrf_token": get_csrf(client, "/login/link"), "username": "owner@example.com"})
    sent = [m for m in outbox(app).to("owner@example.com") if "sign-in link" in m["Subject"]]
    assert len(sent) == 3
    assert len(audit_events(app, "signin_link.suppressed")) == 3
