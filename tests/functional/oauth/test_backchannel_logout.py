"""OpenID Connect Back-Channel Logout 1.0 end to end (issue 7, Done 5).

A real relying party listens on loopback (``TestRelyingParty``): it signs in through the
code flow (Authlib), keeps the ``sid`` of its ID token, and validates every logout token
as §2.6 says, with the provider's JWKS fetched over HTTP. Each way a session ends must
reach it; clients not involved must not be called; a relying party that never answers
must not hold anybody up; a rolled-back transaction sends nothing.
"""

from __future__ import annotations

import base64
import html
import json
import re
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import pytest
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import select

from idp.context import RequestContext
from idp.keys import jose
from idp.models import AuditEvent
from idp.notify.queue import MailQueue
from idp.oauth.backchannel import default_dispatcher
from tests.fixtures import LiveServer, cli_environment
from tests.functional.oauth.conftest import (
    Browser,
    Registered,
    make_user,
    obtain,
    register,
    start_server,
)

try:  # the relying-party kit (idp.rp), when present: what a real RP of ours would use
    from idp.rp import JwksCache
except ImportError:  # pragma: no cover - before idp.rp existed: the same checks with joserfc alone
    JwksCache = None

EVENT = "http://schemas.openid.net/event/backchannel-logout"
SKEW = 30
NEW_PASSWORD = "a brand new passphrase for tulip season"


class LogoutRejected(ValueError):
    pass


class TestRelyingParty:
    """A relying party's back-channel logout endpoint on loopback. It accepts only a
    ``sid`` it saw in an ID token at sign-in, answers 200 to a valid logout token and 400
    to anything else (§2.8), or, with ``hang``, never answers at all."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, issuer: str, *, hang: bool = False) -> None:
        self.issuer = issuer
        self.client_id: str | None = None
        self.reg: Registered | None = None  # its registration at the provider
        self.hang = hang
        self.release = threading.Event()
        self.known_sessions: dict[str, str] = {}  # sid -> sub, from ID tokens
        self.accepted: list[dict[str, Any]] = []
        self.rejected: list[str] = []
        self.requests: list[dict[str, Any]] = []  # what arrived, before any validation
        self.seen_jti: set[str] = set()
        self._jwks: KeySet | None = None
        self._jwks_cache: Any = None
        self._lock = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        # A path of its own: the provider's memory of an unreachable URI (a port an earlier
        # test used) never applies to this one.
        self.path = f"/backchannel-logout/{secrets.token_hex(6)}"
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}{self.path}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    # ------------------------------------------------------------- sign-in
    def signed_in(self, id_token: str) -> dict[str, Any]:
        """What the RP keeps from the ID token: the session it belongs to (OIDC Front- and
        Back-Channel Logout: ``sid``), after checking it like any ID token."""
        claims = self._verify(id_token)
        if claims.get("aud") != self.client_id and self.client_id not in (claims.get("aud") or []):
            raise LogoutRejected("ID token for another client")
        assert isinstance(claims.get("sid"), str) and claims["sid"], "the ID token carries no sid"
        with self._lock:
            self.known_sessions[claims["sid"]] = claims["sub"]
        return claims

    # ------------------------------------------------------- §2.6 validation
    def validate(self, token: str) -> dict[str, Any]:
        header = json.loads(_b64(token.split(".")[0]))
        # §2.4 / RFC 8725 §3.11: explicit typing, so no other JWT of this issuer passes.
        if header.get("typ") != "logout+jwt":
            raise LogoutRejected(f"typ is {header.get('typ')!r}")
        claims = self._verify(token)  # step 2: signature, with a key from the JWKS
        now = time.time()
        # Step 3: iss, aud, iat, exp as for an ID token.
        if claims.get("iss") != self.issuer:
            raise LogoutRejected("wrong issuer")
        aud = claims.get("aud")
        if aud != self.client_id and not (isinstance(aud, list) and self.client_id in aud):
            raise LogoutRejected("not for this client")
        if not isinstance(claims.get("iat"), int) or claims["iat"] > now + SKEW:
            raise LogoutRejected("iat missing or in the future")
        if not isinstance(claims.get("exp"), int) or claims["exp"] <= now - SKEW:
            raise LogoutRejected("expired")
        # Step 4: sub or sid.
        if "sub" not in claims and "sid" not in claims:
            raise LogoutRejected("neither sub nor sid")
        # Step 5: the event, a JSON object.
        events = claims.get("events")
        if not isinstance(events, dict) or not isinstance(events.get(EVENT), dict):
            raise LogoutRejected("no back-channel logout event")
        # Step 6: no nonce (a logout token must never pass as an ID token).
        if "nonce" in claims:
            raise LogoutRejected("nonce present")
        # Step 7: not seen before.
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise LogoutRejected("no jti")
        with self._lock:
            if jti in self.seen_jti:
                raise LogoutRejected("replayed jti")
            self.seen_jti.add(jti)
            # Steps 8 and 9: a session this RP knows, of the same person.
            sid = claims.get("sid")
            if sid not in self.known_sessions:
                raise LogoutRejected("unknown sid")
            if "sub" in claims and self.known_sessions[sid] != claims["sub"]:
                raise LogoutRejected("sub does not match the session")
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        header = json.loads(_b64(token.split(".")[0]))
        if header.get("alg") != "ES256":  # the only algorithm this RP registered for
            raise LogoutRejected(f"alg {header.get('alg')!r}")
        if JwksCache is not None:
            found = self._cache().get(str(header.get("kid")))
            if found is None or "ES256" not in found.algorithms:
                raise LogoutRejected("unknown kid")
            key: Any = found.key
        else:
            key = self._keys(refresh=False)
            if header.get("kid") not in {k.kid for k in key.keys}:
                key = self._keys(refresh=True)  # a new key: fetch the JWKS again
        try:
            return dict(jwt.decode(token, key, algorithms=["ES256"]).claims)
        except (JoseError, ValueError) as error:
            raise LogoutRejected(f"signature: {error}") from None

    def _jwks_uri(self) -> str:
        return httpx.get(self.issuer + "/.well-known/openid-configuration", timeout=10).json()["jwks_uri"]

    def _cache(self) -> Any:
        if self._jwks_cache is None:
            self._jwks_cache = JwksCache(self._jwks_uri())
        return self._jwks_cache

    def _keys(self, *, refresh: bool) -> KeySet:
        if self._jwks is None or refresh:
            self._jwks = KeySet.import_key_set(httpx.get(self._jwks_uri(), timeout=10).json())
        return self._jwks

    # ------------------------------------------------------------- waiting
    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self._lock:
            while len(self.accepted) < count and time.monotonic() < deadline:
                self._lock.wait(max(deadline - time.monotonic(), 0.01))
            return list(self.accepted)

    def wait_for_request(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not self.requests and time.monotonic() < deadline:
                self._lock.wait(max(deadline - time.monotonic(), 0.01))
            return bool(self.requests)

    # ------------------------------------------------------------ the server
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        rp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(min(length, 65536)).decode()
                with rp._lock:
                    rp.requests.append({"path": self.path, "content_type": self.headers.get("Content-Type"),
                                        "body": body})
                    rp._lock.notify_all()
                if rp.hang:
                    rp.release.wait(60)  # a relying party that never answers
                    return
                form = parse_qs(body)
                try:
                    if self.path != rp.path:
                        raise LogoutRejected("wrong path")
                    if self.headers.get("Content-Type") != "application/x-www-form-urlencoded":
                        raise LogoutRejected("not a form")
                    tokens = form.get("logout_token", [])
                    if len(tokens) != 1:
                        raise LogoutRejected("no single logout_token")
                    claims = rp.validate(tokens[0])
                except LogoutRejected as error:
                    with rp._lock:
                        rp.rejected.append(str(error))
                        rp._lock.notify_all()
                    self._answer(400, {"error": "invalid_request", "error_description": str(error)})
                    return
                with rp._lock:
                    rp.accepted.append(claims)
                    rp._lock.notify_all()
                self._answer(200, None)

            def _answer(self, status: int, payload: dict[str, Any] | None) -> None:
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                self.send_header("Cache-Control", "no-store")  # §2.8
                self.send_header("Content-Length", str(len(data)))
                if payload is not None:
                    self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _b64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# ------------------------------------------------------------------ fixtures
@pytest.fixture
def make_rp(idp: LiveServer) -> Iterator[Any]:
    made: list[TestRelyingParty] = []

    def factory(*, hang: bool = False, logout_uri: bool = True, name: str = "Shop") -> TestRelyingParty:
        party = TestRelyingParty(idp.url, hang=hang)
        made.append(party)
        reg = register(idp, name=name, backchannel_logout_uri=party.uri if logout_uri else None)
        party.client_id, party.reg = reg.client_id, reg
        return party

    yield factory
    for party in made:
        party.close()


@pytest.fixture
def browser(idp: LiveServer) -> Iterator[Browser]:
    b = Browser(idp)
    yield b
    b.close()


def sign_in_to(idp: LiveServer, browser: Browser, party: TestRelyingParty) -> dict[str, Any]:
    """The code flow to the end; the RP keeps the ID token's sid. Returns its claims."""
    assert party.reg is not None
    got = obtain(idp, browser, party.reg)
    claims = party.signed_in(got.token["id_token"])
    claims["_id_token"] = got.token["id_token"]
    return claims


def sign_out(browser: Browser) -> httpx.Response:
    page = browser.http.get("/logout")
    return browser.http.post("/logout", data={"csrf_token": browser.csrf(page.text)})


def settle(timeout: float = 10.0) -> None:
    """Every delivery this process queued has finished (or the timeout passed)."""
    assert default_dispatcher().drain(timeout) == 0


def cli_env(live: LiveServer) -> dict[str, str]:
    return cli_environment(live.settings)


def force_reset_cli(live: LiveServer, email: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "from idp.cli import main; main()", "users", "force-reset",
                           "--email", email], env=cli_env(live), capture_output=True, text=True, timeout=120,
                          check=False)


def queued_events(live: LiveServer) -> list[AuditEvent]:
    registry = live.app.extensions["idp"]
    with registry.sessionmaker() as db:
        return list(db.scalars(select(AuditEvent).where(AuditEvent.event == "backchannel_logout.queued")))


# --------------------------------------------------------------------- flows
def test_discovery_advertises_back_channel_logout_with_sid(idp):
    meta = httpx.get(idp.url + "/.well-known/openid-configuration").json()
    assert meta["backchannel_logout_supported"] is True
    assert meta["backchannel_logout_session_supported"] is True


def test_the_relying_party_rejects_what_bcl_2_6_says_to_reject(idp, make_rp, browser):
    """The RP these tests trust: it must refuse every near miss, or the tests prove nothing."""
    user_id = make_user(idp)
    party = make_rp()
    signed_in = sign_in_to(idp, browser, party)
    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:
        ring = registry.services(db).signing_keys.ring()
    key = ring.signer("ES256")
    now = int(time.time())
    good = {"iss": idp.url, "aud": party.client_id, "iat": now, "exp": now + 120, "jti": "j-0",
            "events": {EVENT: {}}, "sub": user_id, "sid": signed_in["sid"]}

    def signed(claims: dict[str, Any], *, typ: str = "logout+jwt", alg: str = "ES256") -> str:
        k = key if alg == "ES256" else ring.signer(alg)
        return jose.sign(claims, key=k.private, alg=k.alg, kid=k.kid, typ=typ)

    forged = jose.generate("ES256")
    near_misses = [  # (what the RP must say, the token)
        ("nonce present", signed({**good, "jti": "j-1", "nonce": "n"})),
        ("not for this client", signed({**good, "jti": "j-2", "aud": "someone-else"})),
        ("wrong issuer", signed({**good, "jti": "j-3", "iss": "https://evil.example"})),
        ("expired", signed({**good, "jti": "j-4", "iat": now - 600, "exp": now - 300})),
        ("no back-channel logout event", signed({**good, "jti": "j-5", "events": {}})),
        ("unknown sid", signed({**good, "jti": "j-6", "sid": "not-a-session"})),
        ("typ is 'JWT'", signed({**good, "jti": "j-7"}, typ="JWT")),
        ("typ is 'JWT'", signed_in["_id_token"]),  # an ID token is not a logout token
        ("signature", jose.sign({**good, "jti": "j-8"}, key=jose.load_private(forged.private_pem, kid=key.kid,
                                alg="ES256"), alg="ES256", kid=key.kid, typ="logout+jwt")),
        ("alg 'EdDSA'", signed({**good, "jti": "j-9"}, alg="EdDSA")),
    ]
    for reason, token in near_misses:
        response = httpx.post(party.uri, data={"logout_token": token})
        assert response.status_code == 400, reason
        assert party.rejected[-1].startswith(reason), (reason, party.rejected[-1])
    assert party.accepted == []

    genuine = signed({**good, "jti": "j-10"})
    assert httpx.post(party.uri, data={"logout_token": genuine}).status_code == 200
    assert httpx.post(party.uri, data={"logout_token": genuine}).status_code == 400  # replayed jti


def test_sign_out_at_the_provider_reaches_the_relying_party_with_a_valid_logout_token(idp, make_rp, browser):
    user_id = make_user(idp)
    party = make_rp()
    signed_in = sign_in_to(idp, browser, party)

    assert sign_out(browser).status_code == 302

    [claims] = party.wait_for(1)
    assert claims["sid"] == signed_in["sid"] and claims["sub"] == user_id == signed_in["sub"]
    assert claims["aud"] == party.client_id and claims["iss"] == idp.url
    assert 0 < claims["exp"] - claims["iat"] <= 300  # short-lived
    assert party.rejected == []
    request = party.requests[0]
    assert request["content_type"] == "application/x-www-form-urlencoded"
    assert list(parse_qs(request["body"])) == ["logout_token"]
    # The audit log says who was told, never with the token itself.
    [event] = queued_events(idp)
    assert event.details["client_id"] == party.client_id and event.session_id == signed_in["sid"]
    assert "logout_token" not in json.dumps(event.details) and request["body"].split("=", 1)[1] not in json.dumps(
        event.details)
    # Operators see deliveries by outcome on /metrics (process-wide, so at least this one).
    metrics = httpx.get(idp.url + "/metrics").text
    delivered = re.search(r'^idp_backchannel_logout_total\{outcome="delivered"\} (\d+)', metrics, re.MULTILINE)
    assert delivered and int(delivered.group(1)) >= 1, metrics


def test_rp_initiated_logout_reaches_the_relying_party(idp, make_rp, browser):
    make_user(idp)
    party = make_rp()
    signed_in = sign_in_to(idp, browser, party)

    page = browser.http.get("/end-session?" + urlencode({"id_token_hint": signed_in["_id_token"]}))
    action = html.unescape(re.search(r'<form method="post" action="([^"]+)"', page.text).group(1))
    response = browser.http.post(action, data={"csrf_token": browser.csrf(page.text), "decision": "signout"})
    assert response.status_code == 200 and 'data-testid="signed-out"' in response.text

    [claims] = party.wait_for(1)
    assert claims["sid"] == signed_in["sid"]
    settle()
    assert len(party.requests) == 1  # one session end, one logout token (no duplicate)


def test_ending_a_session_from_the_account_page_tells_only_that_sessions_relying_party(idp, make_rp):
    make_user(idp)
    party = make_rp()
    phone, laptop = Browser(idp), Browser(idp)
    try:
        on_phone = sign_in_to(idp, phone, party)
        on_laptop = sign_in_to(idp, laptop, party)
        assert on_phone["sid"] != on_laptop["sid"]

        account = laptop.http.get("/account")
        ended = laptop.http.post(f"/account/sessions/{on_phone['sid']}/end",
                                 data={"csrf_token": laptop.csrf(account.text)})
        assert ended.status_code == 302

        [claims] = party.wait_for(1)
        assert claims["sid"] == on_phone["sid"]
        settle()
        assert len(party.accepted) == 1  # the laptop's session goes on
        assert laptop.http.get("/account").status_code == 200
    finally:
        phone.close()
        laptop.close()


def test_password_change_logs_the_other_sessions_out_at_their_relying_parties(idp, make_rp):
    make_user(idp)
    party = make_rp()
    phone, laptop = Browser(idp), Browser(idp)
    try:
        on_phone = sign_in_to(idp, phone, party)
        sign_in_to(idp, laptop, party)

        page = laptop.http.get("/account/password")
        changed = laptop.http.post("/account/password", data={
            "csrf_token": laptop.csrf(page.text), "current_password": "correct horse battery staple",
            "new_password": NEW_PASSWORD,
        })
        assert changed.status_code == 302, changed.text[:300]

        [claims] = party.wait_for(1)
        assert claims["sid"] == on_phone["sid"]
        settle()
        assert len(party.accepted) == 1  # the session that changed it stays signed in
    finally:
        phone.close()
        laptop.close()


def test_operator_force_reset_from_the_cli_reaches_the_relying_party_before_the_command_exits(idp, make_rp, browser):
    make_user(idp)
    party = make_rp()
    signed_in = sign_in_to(idp, browser, party)

    result = force_reset_cli(idp, "user@example.com")
    assert result.returncode == 0, result.stderr

    # No waiting here: the command itself waited for its deliveries before exiting.
    assert [c["sid"] for c in party.accepted] == [signed_in["sid"]]
    assert party.rejected == []
    assert "logout_token" not in result.stdout + result.stderr


def test_operator_force_reset_in_process_reaches_the_relying_party(idp, make_rp, browser):
    make_user(idp)
    party = make_rp()
    signed_in = sign_in_to(idp, browser, party)

    registry = idp.app.extensions["idp"]
    with registry.sessionmaker() as db:
        registry.services(db).force_reset.one("user@example.com", mail=MailQueue(registry.mail))
        db.commit()

    [claims] = party.wait_for(1)
    assert claims["sid"] == signed_in["sid"]


def test_a_client_without_a_logout_uri_is_not_called_and_one_with_it_is(idp, make_rp, browser):
    make_user(idp)
    party = make_rp()
    silent = make_rp(logout_uri=False, name="Blog")  # same RP host, registered without a URI
    signed_in = sign_in_to(idp, browser, party)
    sign_in_to(idp, browser, silent)  # the same SSO session hands it tokens too

    assert sign_out(browser).status_code == 302

    party.wait_for(1)
    settle()
    assert [c["aud"] for c in party.accepted] == [party.client_id]
    assert silent.requests == []
    assert [e.details["client_id"] for e in queued_events(idp)] == [party.client_id]
    assert party.accepted[0]["sid"] == signed_in["sid"]


def test_a_relying_party_not_involved_in_the_session_is_not_called(idp, make_rp):
    make_user(idp)
    make_user(idp, "other@example.com")
    shop, wallet = make_rp(name="Shop"), make_rp(name="Wallet")
    mine, theirs = Browser(idp), Browser(idp)
    try:
        sign_in_to(idp, mine, shop)
        sign_in_to(idp, theirs, wallet)

        assert sign_out(mine).status_code == 302
        shop.wait_for(1)
        settle()
        assert wallet.requests == []

        # ...and the wallet is reachable: its own session's end does reach it.
        assert sign_out(theirs).status_code == 302
        assert len(wallet.wait_for(1)) == 1
        assert len(shop.accepted) == 1
    finally:
        mine.close()
        theirs.close()


def test_a_rolled_back_session_end_sends_nothing(idp, make_rp, browser):
    user_id = make_user(idp)
    party = make_rp()
    signed_in = sign_in_to(idp, browser, party)
    registry = idp.app.extensions["idp"]

    with registry.sessionmaker() as db:
        ended = registry.services(db).sessions.end_all_for_user(user_id, reason="test", ctx=RequestContext.system())
        assert ended == 1
        db.rollback()
    settle()
    assert party.requests == []
    assert browser.http.get("/account").status_code == 200  # the session really lives on

    # The same end, committed, is told (so the silence above was the rollback's doing).
    with registry.sessionmaker() as db:
        registry.services(db).sessions.end_all_for_user(user_id, reason="test", ctx=RequestContext.system())
        db.commit()
    [claims] = party.wait_for(1)
    assert claims["sid"] == signed_in["sid"]


# ------------------------------------------------------ relying parties that fail
TIMEOUT_MS = 2500  # wide enough that a loaded machine does not fail the "did not wait" checks


@pytest.fixture
def idp_short(database_url: str, redis_url: str | None, tmp_path: Path) -> Iterator[LiveServer]:
    live, stop = start_server(database_url, redis_url, tmp_path, backchannel_logout_timeout_ms=TIMEOUT_MS)
    try:
        yield live
    finally:
        stop()


def _hanging_rp(live: LiveServer, *, name: str = "Slow") -> TestRelyingParty:
    party = TestRelyingParty(live.url, hang=True)
    reg = register(live, name=name, backchannel_logout_uri=party.uri)
    party.client_id, party.reg = reg.client_id, reg
    return party


def _dead_uri() -> str:
    # A port that was just free: connecting is refused.
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    port = server.server_address[1]
    server.server_close()
    return f"http://127.0.0.1:{port}/backchannel-logout/{secrets.token_hex(6)}"


def test_a_relying_party_that_never_answers_does_not_hold_up_sign_out(idp_short):
    make_user(idp_short)
    slow = _hanging_rp(idp_short)
    dead = register(idp_short, name="Gone", backchannel_logout_uri=_dead_uri())
    browser = Browser(idp_short)
    try:
        sign_in_to(idp_short, browser, slow)
        obtain(idp_short, browser, dead)
        before = default_dispatcher().counts()

        started = time.monotonic()
        response = sign_out(browser)
        elapsed = time.monotonic() - started

        assert response.status_code == 302 and response.headers["Location"].endswith("/login")
        assert elapsed < TIMEOUT_MS / 1000  # the response did not wait for either RP
        assert browser.http.get("/account").status_code == 302  # signed out all the same
        assert slow.wait_for_request(5)  # it was called...
        # ...and given up on after the timeout; the dead one counted as unreachable.
        settle(TIMEOUT_MS / 1000 + 5)
        after = default_dispatcher().counts()
        assert after.get("timeout", 0) - before.get("timeout", 0) == 1
        assert after.get("unreachable", 0) - before.get("unreachable", 0) == 1
    finally:
        browser.close()
        slow.close()


def test_a_relying_party_that_never_answers_does_not_hold_up_a_force_reset(idp_short):
    make_user(idp_short)
    slow = _hanging_rp(idp_short)
    browser = Browser(idp_short)
    try:
        sign_in_to(idp_short, browser, slow)
        registry = idp_short.app.extensions["idp"]
        with registry.sessionmaker() as db:
            started = time.monotonic()
            registry.services(db).force_reset.one("user@example.com", mail=MailQueue(registry.mail))
            db.commit()
            elapsed = time.monotonic() - started
        assert elapsed < TIMEOUT_MS / 1000
        assert slow.wait_for_request(5)
        settle(TIMEOUT_MS / 1000 + 5)
    finally:
        browser.close()
        slow.close()


def test_the_cli_waits_for_a_hanging_relying_party_at_most_the_timeout(idp_short):
    make_user(idp_short)
    slow = _hanging_rp(idp_short)
    browser = Browser(idp_short)
    try:
        sign_in_to(idp_short, browser, slow)
        # The RP holds the connection for 60 s; the command must give up after the timeout.
        started = time.monotonic()
        result = force_reset_cli(idp_short, "user@example.com")
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr
        assert len(slow.requests) == 1  # it was called before the command ended
        # The command waited for the outcome (logged, without the token), then gave up.
        assert "backchannel logout timeout: client=" + slow.client_id in result.stderr
        assert "logout_token" not in result.stderr and slow.requests[0]["body"][13:] not in result.stderr
        assert elapsed < 30
    finally:
        browser.close()
        slow.close()
