"""Fixtures and factories: apps, clients, the mail outbox, users, a live server."""

from __future__ import annotations

import email
import email.policy
import hashlib
import io
import os
import random
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from idp import create_app
from idp.models import User
from idp.notify.queue import IN_FLIGHT
from idp.settings import Settings
from tests.conftest import make_settings, truncate_all

CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')


class Outbox:
    """The file outbox as a test reads it: parsed messages, oldest first."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def messages(self) -> list[EmailMessage]:
        # A live server answers before the request's mail leaves (idp/web/requests.py):
        # read once every mail this process queued has been written.
        assert IN_FLIGHT.settled(10.0), "mail queued by a request was still being sent after 10 s"
        if not self.folder.exists():
            return []
        return [
            email.message_from_bytes(p.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
            for p in sorted(self.folder.glob("*.eml"))
        ]

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages() if m["To"] == address]

    def last_link(self, address: str, path: str) -> str:
        """The last absolute link to `path` mailed to `address`."""
        for message in reversed(self.to(address)):
            body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            found = re.findall(r"https?://\S+" + re.escape(path) + r"\S*", body)
            if found:
                return found[-1]
        raise AssertionError(f"no mail with a {path} link to {address}")


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings)
    yield application
    application.extensions["idp"].engine.dispose()
    truncate_all(settings.database_url)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def outbox(settings: Settings) -> Outbox:
    return Outbox(settings.mail_outbox)


def csrf_from(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def get_csrf(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return csrf_from(response.get_data(as_text=True))


def hibp_lines(passwords: Iterable[str] = (), *, filler: int = 0, seed: int = 0) -> bytes:
    """A generated corpus in the Pwned Passwords download format (SHA1HEX:COUNT, CRLF):
    the SHA-1 of each password plus ``filler`` random hashes, in sorted order."""
    rng = random.Random(seed)
    hashes = [hashlib.sha1(p.encode()).hexdigest().upper() for p in passwords]
    hashes += [f"{rng.getrandbits(160):040X}" for _ in range(filler)]
    return b"".join(f"{h}:{rng.randint(1, 10**6)}\r\n".encode() for h in sorted(hashes))


@pytest.fixture
def breach(settings: Settings) -> Callable[..., Path]:
    """Import passwords (plus random filler) into this test's corpus through the real
    importer, as `idp breached import` would; running apps pick it up at the next check."""
    from idp.breached import import_corpus, shipped_keys

    def add(*passwords: str, filler: int = 2000) -> Path:
        data = hibp_lines(passwords, filler=filler)
        import_corpus([("generated", io.BytesIO(data))], settings.breached_corpus, extra_keys=[shipped_keys()])
        return settings.breached_corpus

    return add


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """Factory: a verified account with a password, created through the real service."""

    def factory(email: str = "user@example.com", password: str = "correct horse battery staple",
                *, verified: bool = True) -> User:
        registry = app.extensions["idp"]
        with registry.sessionmaker() as db:
            user = registry.services(db).accounts.create_by_operator(email, password, verified=verified)
            db.commit()
            return user

    return factory


def sign_in(client: FlaskClient, email: str, password: str, *, next_url: str | None = None):  # type: ignore[no-untyped-def]
    token = get_csrf(client, "/login")
    data = {"csrf_token": token, "username": email, "password": password}
    if next_url:
        data["next"] = next_url
    return client.post("/login", data=data)


@dataclass
class LiveServer:
    url: str
    app: Flask
    settings: Settings
    outbox: Outbox


def cli_environment(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment for running the `idp` command against the same database, keys and
    outbox as ``settings`` (nothing inherited but PATH), with test-cheap argon2."""
    values = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "IDP_ENV": "testing",
        "IDP_ISSUER": settings.issuer,
        "IDP_DATABASE_URL": settings.database_url,
        "IDP_KEYS_DIR": str(settings.keys_dir),
        "IDP_MAIL_OUTBOX": str(settings.mail_outbox),
        "IDP_ARGON2_TIME_COST": "1",
        "IDP_ARGON2_MEMORY_KIB": "8",
        "IDP_ARGON2_PARALLELISM": "1",
        "IDP_BREACHED_CORPUS": str(settings.breached_corpus),
        "IDP_KEY_UPCOMING_SECONDS": str(settings.key_upcoming_seconds),
        "IDP_KEY_ROTATION_DAYS": str(settings.key_rotation_days),
        "IDP_BACKCHANNEL_LOGOUT_TIMEOUT_MS": str(settings.backchannel_logout_timeout_ms),
    }
    if settings.redis_url:
        values["IDP_REDIS_URL"] = settings.redis_url
    values.update(extra)
    return values


def closed_before_sent(app: Flask):  # type: ignore[no-untyped-def]
    """WSGI wrapper for Werkzeug's test server: read the whole answer and close it before
    the server writes it. Werkzeug's server closes a response only after draining the
    socket, which with Chromium can wait until the browser drops the connection; mail
    queued for after the response (idp/web/requests.py) would wait that long. Granian,
    which serves the product, closes right after writing (idp/server.py)."""

    def wsgi(environ, start_response):  # type: ignore[no-untyped-def]
        body = app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    return wsgi


@pytest.fixture
def live_server(
    database_url: str, redis_url: str | None, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[LiveServer]:
    """The app on a real socket (127.0.0.1, random port), issuer http://localhost:PORT.

    Settings overrides come by indirect parametrization:
    ``@pytest.mark.parametrize("live_server", [{"mfa_policy": "optional"}], indirect=True)``.
    """
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    port = server.socket.getsockname()[1]
    overrides = getattr(request, "param", None) or {}
    settings = make_settings(
        database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, issuer=f"http://localhost:{port}",
        **overrides,
    )
    application = create_app(settings)
    server.app = closed_before_sent(application)
    # shutdown() waits for the loop's next look: at the default 0.5 s poll, up to half a
    # second per test, idle.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield LiveServer(url=settings.issuer, app=application, settings=settings, outbox=Outbox(settings.mail_outbox))
    finally:
        server.shutdown()
        thread.join(timeout=5)
        application.extensions["idp"].engine.dispose()
        truncate_all(database_url)


def start_session(app: Flask, client: FlaskClient, email: str, *, amr: tuple[str, ...] = ("pwd",)) -> str:
    """Give ``client`` a live SSO session for ``email`` via the real SessionService, as a
    completed sign-in leaves it: for tests of what a signed-in browser can do (account page,
    ending sessions), independent of the steps a sign-in may pass through (MFA, new device).
    Returns the session's public id (the one the account page shows)."""
    from idp.context import RequestContext

    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        services = registry.services(db)
        user = services.accounts.by_email(email)
        assert user is not None, f"no account for {email}"
        record, secret = services.sessions.start(user, amr=list(amr), ctx=RequestContext(ip="127.0.0.1"))
        db.commit()
    name = "idp_sso" if registry.settings.is_local_http else "__Host-idp_sso"
    client.set_cookie(name, secret)
    return record.id


def prove_new_device(client: FlaskClient, email: str, outbox: Outbox) -> None:
    """What a person on a new device does when the gate (issue 6) asks, and no second
    factor is enrolled: have a sign-in link mailed, open it, confirm."""
    page = client.get("/login/new-device")
    if page.status_code != 200 or 'action="/login/new-device"' not in page.get_data(as_text=True):
        return
    client.post("/login/new-device", data={"csrf_token": csrf_from(page.get_data(as_text=True))})
    link = outbox.last_link(email, "/login/link/confirm")
    path = link[link.index("/login/link/confirm"):]
    token = path.split("token=", 1)[1]
    response = client.post("/login/link/confirm", data={"csrf_token": get_csrf(client, path), "token": token})
    assert response.status_code == 302, response.status_code


SESSION_ID_RE = re.compile(r'data-session-id="([^"]+)"')


def own_session_id(client: FlaskClient) -> str:
    """The public id of the browser's own session, as the account page lists it."""
    return SESSION_ID_RE.findall(client.get("/account").get_data(as_text=True))[0]


# Every form of the foundation: name -> (needs a signed-in browser, path builder,
# valid fields besides the CSRF token). The CSRF and bad-input tests walk all of them.
FOUNDATION_FORMS = {
    "login": (False, lambda c: "/login", {"username": "user@example.com", "password": "correct horse battery staple"}),
    "register": (False, lambda c: "/register", {"username": "new@example.com", "password": "correct horse battery staple"}),
    "verify-email": (False, lambda c: "/verify-email", {"token": "A" * 43}),
    "logout": (True, lambda c: "/logout", {}),
    "end-session": (True, lambda c: f"/account/sessions/{own_session_id(c)}/end", {}),
    "end-other-sessions": (True, lambda c: "/account/sessions/end-others", {}),
}
