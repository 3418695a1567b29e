"""JwksCache: Cache-Control, bounded refetches on unknown kids, stale keys on failure."""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import pytest

from idp.rp import InvalidToken, JwksCache, ProviderUnavailable, TokenValidator
from tests.unit.rp.conftest import (
    AUDIENCE,
    ISSUER,
    Clock,
    JwksServer,
    SigningKey,
    b64,
    new_key,
    sign,
)

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def make_validator(server: JwksServer, clock: Clock, **options: Any) -> TokenValidator:
    return TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=JwksCache(server.jwks_uri, clock=clock, **options))


def random_kid_token(key: SigningKey) -> str:
    return sign(key, kid=secrets.token_urlsafe(12))


def test_unknown_kid_flood_costs_the_provider_one_fetch(validator: TokenValidator, jwks_server: JwksServer,
                                                        es_key: SigningKey, clock: Clock) -> None:
    validator.validate(sign(es_key))
    assert jwks_server.requests == 1
    for _ in range(100):  # right after a fetch: none at all
        with pytest.raises(InvalidToken, match="unknown kid"):
            validator.validate(random_kid_token(es_key))
    assert jwks_server.requests == 1
    clock.advance(31)  # keys still fresh (max-age 300), but a refetch is allowed again
    for _ in range(1000):
        with pytest.raises(InvalidToken, match="unknown kid"):
            validator.validate(random_kid_token(es_key))
    assert jwks_server.requests == 2  # one refetch for the first unknown kid, then rate-limited
    assert validator.jwks.fetches == 2
    clock.advance(31)  # past min_refetch_interval: one more is allowed, still only one
    for _ in range(100):
        with pytest.raises(InvalidToken):
            validator.validate(random_kid_token(es_key))
    assert jwks_server.requests == 3


def test_unknown_kid_flood_from_many_threads_is_single_flight(jwks_server: JwksServer,
                                                              es_key: SigningKey) -> None:
    """Real clock, 16 threads, the provider slow to answer: still one fetch at a time, and
    only one within the interval."""
    jwks_server.keys = [es_key.public_jwk()]
    jwks_server.delay = 0.2
    v = TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=JwksCache(jwks_server.jwks_uri, min_refetch_interval=30))
    tokens = [random_kid_token(es_key) for _ in range(1000)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def attack(chunk: list[str]) -> None:
        for token in chunk:
            try:
                v.validate(token)
                result = "accepted"
            except InvalidToken as error:
                result = type(error).__name__
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=attack, args=(tokens[i::16],)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(outcomes) == 1000 and set(outcomes) == {"InvalidToken"}
    assert jwks_server.requests == 1
    v.validate(sign(es_key))  # the real key still works, from the cache
    assert jwks_server.requests == 1


def test_a_new_key_is_picked_up_on_its_first_token(validator: TokenValidator, jwks_server: JwksServer,
                                                   es_key: SigningKey, clock: Clock) -> None:
    """Key rotation: the provider publishes a key, the first token under it triggers one refetch."""
    validator.validate(sign(es_key))
    clock.advance(31)
    rotated = new_key("ES256")
    jwks_server.keys.append(rotated.public_jwk())
    validator.validate(sign(rotated))
    assert jwks_server.requests == 2


def test_max_age_is_honoured(jwks_server: JwksServer, es_key: SigningKey, clock: Clock) -> None:
    jwks_server.keys = [es_key.public_jwk()]
    jwks_server.cache_control = "public, max-age=120"
    v = make_validator(jwks_server, clock)
    token = sign(es_key)
    v.validate(token)
    clock.advance(119)
    v.validate(token)
    assert jwks_server.requests == 1
    clock.advance(2)  # expired: refetched once
    v.validate(token)
    v.validate(token)
    assert jwks_server.requests == 2


def test_age_header_counts_against_max_age(jwks_server: JwksServer, es_key: SigningKey, clock: Clock) -> None:
    from email.message import Message

    from idp.rp.http import cache_control_max_age

    headers = Message()
    headers["Cache-Control"] = "public, max-age=300"
    headers["Age"] = "250"
    assert cache_control_max_age(headers) == (False, 50.0)


@pytest.mark.parametrize("cache_control", ["no-store", "no-cache", "private, no-cache, max-age=3600",
                                           "max-age=0", "max-age=5"])
def test_no_store_and_short_max_age_refetch_at_the_floor(jwks_server: JwksServer, es_key: SigningKey,
                                                         clock: Clock, cache_control: str) -> None:
    """Refetched, but no more often than min_refetch_interval (30 s here)."""
    jwks_server.keys = [es_key.public_jwk()]
    jwks_server.cache_control = cache_control
    v = make_validator(jwks_server, clock)
    token = sign(es_key)
    for _ in range(10):
        v.validate(token)
    assert jwks_server.requests == 1
    clock.advance(29)
    v.validate(token)
    assert jwks_server.requests == 1
    clock.advance(2)
    v.validate(token)
    assert jwks_server.requests == 2


@pytest.mark.parametrize(("cache_control", "fresh_for"), [
    ("max-age=99999999", 3600), (None, 300), ("max-age=abc", 300), ("max-age=-5", 300),
])
def test_max_age_is_capped_and_defaulted(jwks_server: JwksServer, es_key: SigningKey, clock: Clock,
                                         cache_control: str | None, fresh_for: int) -> None:
    jwks_server.keys = [es_key.public_jwk()]
    jwks_server.cache_control = cache_control
    v = make_validator(jwks_server, clock, max_age=3600, default_max_age=300)
    token = sign(es_key)
    v.validate(token)
    clock.advance(fresh_for - 1)
    v.validate(token)
    assert jwks_server.requests == 1
    clock.advance(2)
    v.validate(token)
    assert jwks_server.requests == 2


@pytest.mark.parametrize("failure", ["status", "garbage", "html", "no keys list", "refused"])
def test_a_failed_fetch_keeps_serving_the_cached_keys_for_a_bounded_time(
        jwks_server: JwksServer, es_key: SigningKey, clock: Clock, failure: str) -> None:
    jwks_server.keys = [es_key.public_jwk()]
    v = make_validator(jwks_server, clock, keep_stale_for=600)
    token = sign(es_key)
    v.validate(token)
    if failure == "status":
        jwks_server.status = 500
    elif failure == "garbage":
        jwks_server.body = b"\xff\x00{{"
    elif failure == "html":
        jwks_server.body = b"<html>maintenance</html>"
    elif failure == "no keys list":
        jwks_server.body = json.dumps({"keys": "none"}).encode()
    else:
        v.jwks.jwks_uri = "http://127.0.0.1:9/jwks.json"  # discard port: connection refused
    clock.advance(301)
    v.validate(token)  # stale, refetch failed, last good keys used
    assert v.jwks.failures == 1
    clock.advance(500)
    v.validate(token)
    assert v.jwks.failures == 2
    clock.advance(101)  # 300 fresh + 600 stale exceeded: fail closed
    with pytest.raises(ProviderUnavailable):
        v.validate(token)


def test_failure_is_retried_only_at_the_refetch_interval(jwks_server: JwksServer, es_key: SigningKey,
                                                         clock: Clock) -> None:
    jwks_server.keys = [es_key.public_jwk()]
    v = make_validator(jwks_server, clock)
    token = sign(es_key)
    v.validate(token)
    jwks_server.status = 503
    clock.advance(301)
    for _ in range(50):
        v.validate(token)
    assert jwks_server.requests == 2
    jwks_server.status = 200
    clock.advance(31)
    v.validate(token)
    assert jwks_server.requests == 3
    clock.advance(299)
    v.validate(token)
    assert jwks_server.requests == 3  # fresh again after the successful fetch


def test_provider_down_from_the_start_fails_closed(jwks_server: JwksServer, es_key: SigningKey,
                                                   clock: Clock) -> None:
    jwks_server.status = 500
    v = make_validator(jwks_server, clock)
    with pytest.raises(ProviderUnavailable):
        v.validate(sign(es_key))
    with pytest.raises(InvalidToken):  # ProviderUnavailable is an InvalidToken: callers fail closed
        v.validate(sign(es_key))


def test_oversized_jwks_is_refused(jwks_server: JwksServer, es_key: SigningKey, clock: Clock) -> None:
    jwks_server.keys = [es_key.public_jwk(padding="x" * 100_000)]
    v = make_validator(jwks_server, clock)
    with pytest.raises(ProviderUnavailable):
        v.validate(sign(es_key))
    jwks_server.keys = [new_key().public_jwk() for _ in range(40)] + [es_key.public_jwk()]
    clock.advance(31)
    with pytest.raises(ProviderUnavailable):
        v.validate(sign(es_key))


def test_redirect_to_another_origin_is_not_followed(jwks_server: JwksServer, es_key: SigningKey,
                                                    clock: Clock) -> None:
    jwks_server.keys = [es_key.public_jwk()]
    port = jwks_server.url.rsplit(":", 1)[1]
    jwks_server.redirect_to = f"http://localhost:{port}/jwks.json"  # same server, another host name
    v = make_validator(jwks_server, clock)
    with pytest.raises(ProviderUnavailable):
        v.validate(sign(es_key))
    assert jwks_server.requests == 1


def test_http_is_refused_outside_loopback() -> None:
    with pytest.raises(ValueError, match="https"):
        JwksCache("http://idp.example/jwks.json")
    with pytest.raises(ValueError):
        JwksCache("file:///etc/passwd")
    JwksCache("https://idp.example/jwks.json")


def test_keys_it_cannot_trust_are_left_out(jwks_server: JwksServer, clock: Clock) -> None:
    good = new_key("ES256")
    private = new_key("ES256")
    twin_a, twin_b = new_key("ES256", kid="twin"), new_key("EdDSA", kid="twin")
    enc = new_key("ES256")
    wrong_alg = new_key("ES256")
    jwks_server.keys = [
        good.public_jwk(),
        {**private.key.as_dict(private=True), "kid": private.kid},
        twin_a.public_jwk(), twin_b.public_jwk(),
        enc.public_jwk(use="enc"),
        wrong_alg.public_jwk(alg="EdDSA"),
        {"kty": "RSA", "kid": "rsa", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "crv": "P-256", "kid": "bad-point", "x": b64(b"\x01" * 32), "y": b64(b"\x02" * 32)},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        "not a key", None, {"kid": ["list"]},
    ]
    cache = JwksCache(jwks_server.jwks_uri, clock=clock)
    cache.refresh()
    assert cache.kids == (good.kid,)


@pytest.mark.parametrize("reply", [b"garbage\r\n\r\n", b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ke",
                                   b"HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n{}"])
def test_a_broken_http_answer_is_provider_unavailable_not_a_crash(reply: bytes, es_key: SigningKey,
                                                                  clock: Clock) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def answer() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        v = TokenValidator(issuer=ISSUER, audience=AUDIENCE,
                           jwks=JwksCache(f"http://127.0.0.1:{port}/jwks.json", clock=clock, timeout=5))
        with pytest.raises(ProviderUnavailable):
            v.validate(sign(es_key))
    finally:
        thread.join(timeout=5)
        listener.close()


def test_a_silent_provider_times_out(es_key: SigningKey, clock: Clock) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts the connection (backlog) but never answers
    try:
        cache = JwksCache(f"http://127.0.0.1:{listener.getsockname()[1]}/jwks.json", clock=clock, timeout=0.3)
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable):
            TokenValidator(issuer=ISSUER, audience=AUDIENCE, jwks=cache).validate(sign(es_key))
        assert time.monotonic() - started < 3
    finally:
        listener.close()
