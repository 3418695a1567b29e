"""OAuth/OIDC flows through a real socket: the app on a live server, Authlib's httpx
OAuth client as the relying party, an httpx client as the person's browser.

MFA pages are another issue: these servers run with ``mfa_policy="optional"`` so a
password sign-in is enough (one test proves that ``required`` withholds the code).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
from authlib.integrations.requests_client import OAuth2Session
from flask import Flask
from werkzeug.serving import make_server

from idp import create_app
from tests.conftest import make_settings, truncate_all
from tests.fixtures import CSRF_RE, LiveServer, Outbox, closed_before_sent

PASSWORD = "correct horse battery staple"
CONFIDENTIAL_REDIRECT = "https://rp.example/callback"
PUBLIC_REDIRECT = "http://127.0.0.1/callback"


def start_server(database_url: str, redis_url: str | None, tmp_path: Path, **overrides: Any) -> tuple[LiveServer, Callable[[], None]]:
    server = make_server("127.0.0.1", 0, Flask("placeholder"), threaded=True)
    port = server.socket.getsockname()[1]
    values: dict[str, Any] = {"mfa_policy": "optional", "issuer": f"http://localhost:{port}"}
    values.update(overrides)
    settings = make_settings(database_url=database_url, redis_url=redis_url, tmp_path=tmp_path, **values)
    application = create_app(settings)
    server.app = closed_before_sent(application)
    # shutdown() waits for the loop's next look: at the default 0.5 s poll, up to half a
    # second per test, idle.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        thread.join(timeout=5)
        application.extensions["idp"].engine.dispose()
        truncate_all(database_url)

    return LiveServer(url=settings.issuer, app=application, settings=settings, outbox=Outbox(settings.mail_outbox)), stop


@pytest.fixture
def idp(database_url: str, redis_url: str | None, tmp_path: Path) -> Iterator[LiveServer]:
    live, stop = start_server(database_url, redis_url, tmp_path)
    try:
        yield live
    finally:
        stop()


@dataclass
class Registered:
    client_id: str
    secret: str | None
    redirect_uri: str


def register(live: LiveServer, *, public: bool = False, first_party: bool = False,
             redirect_uris: tuple[str, ...] | None = None, **kwargs: Any) -> Registered:
    uris = redirect_uris or ((PUBLIC_REDIRECT,) if public else (CONFIDENTIAL_REDIRECT,))
    registry = live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        client, secret = registry.services(db).clients.create(
            name=kwargs.pop("name", "Shop"), redirect_uris=uris, public=public, first_party=first_party, **kwargs
        )
        db.commit()
        return Registered(client.id, secret, uris[0])


def make_user(live: LiveServer, email: str = "user@example.com", password: str = PASSWORD) -> str:
    registry = live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        user = registry.services(db).accounts.create_by_operator(email, password, verified=True)
        db.commit()
        return user.id


def rp(live: LiveServer, reg: Registered, **kwargs: Any) -> OAuth2Session:
    """The relying party: Authlib's OAuth 2.0 client, PKCE S256."""
    return OAuth2Session(
        client_id=reg.client_id,
        client_secret=reg.secret,
        token_endpoint_auth_method="none" if reg.secret is None else kwargs.pop("auth_method", "client_secret_basic"),
        redirect_uri=reg.redirect_uri,
        scope=kwargs.pop("scope", "openid email"),
        code_challenge_method="S256",
        **kwargs,
    )


class Browser:
    """The person's user agent: cookies, forms, and redirects followed by hand up to the
    client's redirect URI (which is never fetched)."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.http = httpx.Client(base_url=live.url, follow_redirects=False, timeout=10)

    def close(self) -> None:
        self.http.close()

    def csrf(self, html: str) -> str:
        match = CSRF_RE.search(html)
        assert match, "no CSRF token on the page"
        return match.group(1)

    def sign_in(self, email: str = "user@example.com", password: str = PASSWORD, *, next_url: str | None = None,
                prove_device: bool = True) -> httpx.Response:
        """The password step; then, as a person on a new device would, the mailed link
        that the new-device gate (issue 6) asks for when no second factor is enrolled."""
        page = self.http.get("/login", params={"next": next_url} if next_url else None)
        assert page.status_code == 200
        data = {"csrf_token": self.csrf(page.text), "username": email, "password": password}
        if next_url:
            data["next"] = next_url
        response = self.http.post("/login", data=data)
        if prove_device and response.status_code == 302:
            self.prove_device(email)
        return response

    def prove_device(self, email: str) -> None:
        page = self.http.get("/login/new-device")
        if page.status_code != 200 or 'action="/login/new-device"' not in page.text:
            return  # nothing owed (a recognised device, or a second factor is the proof)
        sent = self.http.post("/login/new-device", data={"csrf_token": self.csrf(page.text)})
        assert sent.status_code == 200, sent.status_code
        link = self.live.outbox.last_link(email, "/login/link/confirm")
        page = self.http.get(link)
        token = parse_qs(urlsplit(link).query)["token"][0]
        confirmed = self.http.post("/login/link/confirm", data={"csrf_token": self.csrf(page.text), "token": token})
        assert confirmed.status_code == 302, confirmed.status_code

    def go(self, url: str, *, consent: str | None = "allow", sign_in: bool = True, max_hops: int = 10) -> httpx.Response:
        """Follow redirects from ``url`` on the provider; sign in and answer consent as
        asked. Returns the first response that leaves the provider or stops there."""
        response = self.http.get(url)
        for _ in range(max_hops):
            if response.status_code in (302, 303):
                location = urljoin(str(response.url), response.headers["Location"])
                if not location.startswith(self.live.url):
                    return response
                path = urlsplit(location)
                if path.path == "/login" and sign_in:
                    next_url = parse_qs(path.query).get("next", ["/account"])[0]
                    response = self.sign_in(next_url=next_url)
                    continue
                response = self.http.get(location)
                continue
            if response.status_code == 200 and 'name="decision"' in response.text and consent:
                action = _form_action(response.text)
                response = self.http.post(action, data={"csrf_token": self.csrf(response.text), "decision": consent})
                continue
            return response
        raise AssertionError("too many redirects")


def _form_action(html: str) -> str:
    import html as html_module
    import re

    match = re.search(r'<form method="post" action="([^"]+)"', html)
    assert match
    return html_module.unescape(match.group(1))


@pytest.fixture
def browser_factory(idp: LiveServer) -> Iterator[Callable[[], Browser]]:
    made: list[Browser] = []

    def factory() -> Browser:
        b = Browser(idp)
        made.append(b)
        return b

    yield factory
    for b in made:
        b.close()


def callback_params(response: httpx.Response) -> dict[str, str]:
    assert response.status_code in (302, 303), (response.status_code, response.text[:500])
    query = parse_qs(urlsplit(response.headers["Location"]).query)
    return {k: v[0] for k, v in query.items()}


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


@dataclass
class Obtained:
    client: OAuth2Session
    token: dict[str, Any]
    location: str
    verifier: str
    nonce: str


def obtain(live: LiveServer, browser: Browser, reg: Registered, **authorize_params: Any) -> Obtained:
    """Run the code flow to the end: the tokens, and what produced them."""
    client = rp(live, reg)
    verifier, nonce = new_verifier(), "n-" + secrets.token_urlsafe(12)
    url, _state = client.create_authorization_url(
        live.url + "/authorize", code_verifier=verifier, nonce=nonce, **authorize_params
    )
    response = browser.go(url)
    location = response.headers["Location"]
    token = client.fetch_token(live.url + "/token", authorization_response=location, code_verifier=verifier)
    return Obtained(client=client, token=dict(token), location=location, verifier=verifier, nonce=nonce)


def code_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["code"][0]
