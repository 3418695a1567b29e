"""A provider stand-in for idp.rp: our own keys, tokens we sign, and a real JWKS server.

The server is a real HTTP server on loopback in a thread; it counts the requests it
answers, so a test sees exactly what a kid flood costs the provider.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from joserfc.jwk import ECKey, Key, OKPKey

from idp.rp import JwksCache, TokenValidator
from idp.rp.validator import _Registry

ISSUER = "https://idp.example"
AUDIENCE = "https://wallet.example"


@dataclass
class SigningKey:
    kid: str
    alg: str
    key: Key

    def public_jwk(self, **extra: Any) -> dict[str, Any]:
        jwk = dict(self.key.as_dict(private=False))
        jwk.update(kid=self.kid, alg=self.alg, use="sig")
        jwk.update(extra)
        return jwk


def new_key(alg: str = "ES256", kid: str | None = None) -> SigningKey:
    key: Key = ECKey.generate_key("P-256", private=True) if alg == "ES256" else OKPKey.generate_key(
        "Ed25519", private=True)
    return SigningKey(kid or f"{alg.lower()}-{key.thumbprint()[:12]}", alg, key)


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    values: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "client_id": "shop", "iat": now,
        "exp": now + 300, "jti": f"jti-{time.monotonic_ns()}", "scope": "openid wallet:pay",
        "acr": "urn:idp:acr:mfa",
    }
    values.update(overrides)
    return {k: v for k, v in values.items() if v is not None}


def sign(key: SigningKey, payload: dict[str, Any] | None = None, **header: Any) -> str:
    protected = {"alg": key.alg, "kid": key.kid, "typ": "at+jwt"}
    protected.update(header)
    protected = {k: v for k, v in protected.items() if v is not None}
    body = json.dumps(claims() if payload is None else payload).encode()
    return sign_raw(protected, body, key.key, alg=key.alg)


def b64(value: Any) -> str:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_raw(header: Any, payload: bytes, key: Key, *, alg: str) -> str:
    """A JWS compact serialization with whatever header an attacker likes (joserfc's own
    serializer refuses odd headers, the validator must refuse them too)."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    signature = _Registry(algorithms=[alg]).get_alg(alg).sign(signing_input.encode(), key)
    return f"{signing_input}.{b64(signature)}"


@dataclass
class JwksServer:
    """What the provider's /jwks.json and /introspect answer; tests change it freely."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    cache_control: str | None = "public, max-age=300"
    body: bytes | None = None  # overrides the JSON built from keys
    delay: float = 0.0
    requests: int = 0
    redirect_to: str | None = None
    introspection: dict[str, Any] = field(default_factory=lambda: {"active": True})
    introspection_requests: list[dict[str, str]] = field(default_factory=list)
    discovery: dict[str, Any] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jwks_uri(self) -> str:
        return self.url + "/jwks.json"


def _handler(state: JwksServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:  # noqa: N802
            if self.path == "/.well-known/openid-configuration" and state.discovery is not None:
                body = json.dumps(state.discovery).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                return
            if self.path != "/jwks.json":
                self.send_error(404)
                return
            with state.lock:
                state.requests += 1
            if state.delay:
                time.sleep(state.delay)
            if state.redirect_to:
                self.send_response(302)
                self.send_header("Location", state.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            body = state.body if state.body is not None else json.dumps({"keys": state.keys}).encode()
            self.send_response(state.status)
            self.send_header("Content-Type", "application/jwk-set+json")
            if state.cache_control is not None:
                self.send_header("Cache-Control", state.cache_control)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            form = self.rfile.read(length).decode()
            with state.lock:
                state.introspection_requests.append(
                    {"authorization": self.headers.get("Authorization", ""), "body": form})
            body = json.dumps(state.introspection).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def es_key() -> SigningKey:
    return new_key("ES256")


@pytest.fixture
def ed_key() -> SigningKey:
    return new_key("EdDSA")


@pytest.fixture
def validator(jwks_server: JwksServer, es_key: SigningKey, ed_key: SigningKey, clock: Clock) -> TokenValidator:
    jwks_server.keys = [es_key.public_jwk(), ed_key.public_jwk()]
    cache = JwksCache(jwks_server.jwks_uri, min_refetch_interval=30, clock=clock)
    return TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=cache)
