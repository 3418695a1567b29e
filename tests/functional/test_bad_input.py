"""Bad input on every form and endpoint: a clear 4xx, never a 500, and nothing done.

Each form gets every kind of bad value in every one of its fields (the CSRF token is
valid, so what is tested is the field handling, not the CSRF check); forms whose only
field is the token get the bad value there.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

import pytest
from sqlalchemy import select

from idp.models import SsoSession, User
from tests.conftest import make_settings
from tests.fixtures import FOUNDATION_FORMS, get_csrf, start_session

PASSWORD = "correct horse battery staple"
MESSAGE_RE = re.compile(r'role="alert"[^>]*>([^<]+)<')
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def settings(database_url, redis_url, tmp_path):  # type: ignore[no-untyped-def]
    """IDP_MFA_POLICY=optional: a password alone reaches the account page."""
    return make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, mfa_policy="optional")


FORMS = FOUNDATION_FORMS


def encode(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in pairs)


def with_bad_value(token: str, fields: dict[str, str], value: str) -> str:
    """Every field (or the token, if there is no other) set to ``value``, raw-encoded."""
    if not fields:
        return encode([("csrf_token", value)])
    return encode([("csrf_token", token)] + [(k, value) for k in fields])


def raw_escape(token: str, fields: dict[str, str], escape: str) -> str:
    """Like with_bad_value, but ``escape`` goes in as-is (already percent-encoded bytes)."""
    if not fields:
        return "csrf_token=" + escape
    return encode([("csrf_token", token)]) + "".join(f"&{k}={escape}" for k in fields)


BAD_BODIES = {
    "empty-fields": lambda t, f: (with_bad_value(t, f, ""), FORM),
    "no-fields-at-all": lambda t, f: ("", FORM),
    "10MB-body": lambda t, f: (encode([("csrf_token", t), ("username", "a" * 10 * 1024 * 1024)]), FORM),
    "invalid-utf8": lambda t, f: (raw_escape(t, f, "%FF%FEuser%40example.com"), FORM),
    "overlong-utf8": lambda t, f: (raw_escape(t, f, "%C0%AE%C0%AE%40example.com"), FORM),
    "utf8-surrogate": lambda t, f: (raw_escape(t, f, "%ED%A0%80%40example.com"), FORM),
    "10000-char-email": lambda t, f: (with_bad_value(t, f, "a" * 10_000 + "@example.com"), FORM),
    "nul": lambda t, f: (with_bad_value(t, f, "us\x00er@example.com"), FORM),
    "escape": lambda t, f: (with_bad_value(t, f, "us\x1b[31mer@example.com"), FORM),
    "rtl-override": lambda t, f: (with_bad_value(t, f, "user\u202e@example.com"), FORM),
    "duplicated-fields": lambda t, f: (
        encode([("csrf_token", t)] + [(k, v) for k, v in f.items()] * 2) if f
        else encode([("csrf_token", t), ("csrf_token", t)]),
        FORM,
    ),
    "wrong-content-type": lambda t, f: (encode([("csrf_token", t)] + list(f.items())), "text/plain"),
    "json-body": lambda t, f: (json.dumps({"csrf_token": t, **f}), "application/json"),
    "xml-body": lambda t, f: ("<login><csrf_token>" + t + "</csrf_token></login>", "application/xml"),
}

EXPECTED_STATUS = {"10MB-body": 413}


def snapshot(app):  # type: ignore[no-untyped-def]
    with app.extensions["idp"].sessionmaker() as db:
        return (
            sorted(db.scalars(select(User.email))),
            sorted(db.scalars(select(SsoSession.id).where(SsoSession.ended_at.is_(None)))),
        )


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("case", BAD_BODIES)
def test_bad_form_input_gets_a_clear_4xx(app, make_user, form, case):
    make_user("user@example.com", PASSWORD)
    needs_session, path_for, fields = FORMS[form]
    client = app.test_client()
    if needs_session:
        start_session(app, client, "user@example.com")
        start_session(app, app.test_client(), "user@example.com")
    token = get_csrf(client, "/account" if needs_session else "/login")
    path = path_for(client)
    before = snapshot(app)

    body, content_type = BAD_BODIES[case](token, fields)
    response = client.post(path, data=body.encode(), content_type=content_type)

    text = response.get_data(as_text=True)
    assert 400 <= response.status_code < 500, (form, case, response.status_code)
    if case in EXPECTED_STATUS:
        assert response.status_code == EXPECTED_STATUS[case]
    assert "Traceback" not in text and "Something went wrong on our side" not in text
    message = MESSAGE_RE.search(text)
    assert message and len(message.group(1).strip()) > 10, "no message telling the person what was wrong"
    assert snapshot(app) == before, "bad input changed something"


# Upper- and lower-case escapes, first or after plain ASCII, and a lead byte with a bad
# continuation: the UTF-8 check skips bodies that are plain ASCII (idp/web/security.py), so
# every way of escaping a byte above 0x7F must still reach the full check.
@pytest.mark.parametrize("username", ["%FF%FEowner%40example.com", "owner%ff%fe%40example.com",
                                      "owner%40example.com%C3%28"])
def test_invalid_utf8_does_not_become_an_account(app, client, username):
    """Werkzeug keeps an undecodable escape as text: '%FF%FE@x.com' must not be stored."""
    token = get_csrf(client, "/register")
    body = f"csrf_token={token}&username={username}&password=correct+horse+battery+staple"
    response = client.post("/register", data=body, content_type=FORM)
    assert response.status_code == 400
    assert "not UTF-8" in response.get_data(as_text=True)
    with app.extensions["idp"].sessionmaker() as db:
        assert db.scalars(select(User)).all() == []


def test_multipart_form_with_invalid_utf8_is_refused(app, client):
    token = get_csrf(client, "/register")
    boundary = "xYzZY"
    parts = [("csrf_token", token.encode()), ("username", b"\xff\xfeowner@example.com"),
             ("password", b"correct horse battery staple")]
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value + b"\r\n"
        for name, value in parts
    ) + f"--{boundary}--\r\n".encode()
    response = client.post("/register", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 400
    with app.extensions["idp"].sessionmaker() as db:
        assert db.scalars(select(User)).all() == []


def test_raw_non_utf8_bytes_in_a_form_body_are_refused(client):
    token = get_csrf(client, "/login")
    body = f"csrf_token={token}&username=".encode() + b"\xff\xfe@example.com&password=x"
    response = client.post("/login", data=body, content_type=FORM)
    assert response.status_code == 400
    assert "not UTF-8" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    [
        "/verify-email?token=" + "A" * 10_000,
        "/verify-email?token=" + "A" * 129,
        "/verify-email?token=%FF%FE",
        "/verify-email?token=AAAAAAAAAAAAAAAA%00AAAA",
        "/verify-email?token=AAAAAAAAAAAAAAAA%1BAAAA",
        "/verify-email?token=AAAAAAAAAAAAAAAA%E2%80%AEAAAA",
        "/verify-email?token=" + "A" * 43 + "&token=" + "B" * 43,
        "/verify-email?token=",
        "/verify-email",
        "/login?next=%FF",
        "/login?login_hint=%FF%FE",
        "/register?x=%C0%AE",
        "/account?%FF=1",
        "/healthz?%FF",
    ],
)
def test_bad_query_strings_get_a_clear_4xx(client, path):
    response = client.get(path)
    assert 400 <= response.status_code < 500, (path, response.status_code)
    text = response.get_data(as_text=True)
    assert "Traceback" not in text
    if not path.startswith("/healthz"):
        assert MESSAGE_RE.search(text)


def test_overlong_and_odd_tokens_are_refused_on_post_too(client):
    for token in ("A" * 10_000, "A" * 129, "A" * 20 + "\u202e", "A" * 20 + "=", "short"):
        csrf = get_csrf(client, "/login")
        response = client.post("/verify-email", data={"csrf_token": csrf, "token": token})
        assert response.status_code in (400, 413), token[:30]


@pytest.mark.parametrize(
    "path",
    [
        "/login?next=%2F%2Fevil.example",
        "/login?next=/%0d%0aSet-Cookie:x=1",
        "/login?login_hint=" + "a" * 10_000,
        "/login?login_hint=%1B%5B31m",
    ],
)
def test_odd_but_harmless_query_values_are_neutralised(client, path):
    response = client.get(path)
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "evil.example" not in text and "Set-Cookie" not in text and "\x1b" not in text
    assert "a" * 255 not in text


def test_unknown_methods_and_paths_are_4xx(client):
    assert client.put("/login").status_code == 405
    assert client.delete("/account").status_code == 405
    assert client.get("/account/sessions/x/end").status_code == 405
    assert client.get("/%FF%FE").status_code == 404
    assert client.get("/" + "x" * 10_000).status_code == 404


def test_garbage_cookies_are_ignored(client):
    for value in ("\x00\x01", "a" * 4000, "%FF%FE", "!!!"):
        client.set_cookie("idp_sso", value)
        client.set_cookie("idp_flow", value)
        assert client.get("/account").status_code == 302
        assert client.get("/login").status_code == 200
