"""The machine endpoints' limits (idp.protection.ratelimits.ApiLimit): counted without
flask-limiter's decorator (issue 3), with the same meaning: per client address, POSTs
only, one budget per name shared by its endpoints, JSON 429 with Retry-After, shared by
every instance through Redis, and a Redis outage fails over to process memory."""

from __future__ import annotations

import logging
import secrets

from .conftest import client_at

BASIC = ("Authorization", "Basic bm9ib2R5Om5vdGhpbmc=")  # nobody:nothing, an unknown client


def post_token(client):  # type: ignore[no-untyped-def]
    return client.post("/token", data={"grant_type": "client_credentials"}, headers=[BASIC])


def test_token_endpoint_budget_per_address_in_json(make_app):
    app = make_app(rate_limit_token="3 per minute")
    client = client_at(app, "127.0.1.10")
    assert [post_token(client).status_code for _ in range(3)] == [401, 401, 401]
    refused = post_token(client)
    assert refused.status_code == 429
    assert refused.get_json() == {"error": "rate_limited", "error_description": "Too many requests; retry later."}
    assert 1 <= int(refused.headers["Retry-After"]) <= 61
    assert refused.headers["Cache-Control"] == "no-store"
    # Revocation draws on the same budget (ip.token); introspection has its own.
    assert client.post("/revoke", data={"token": "x"}, headers=[BASIC]).status_code == 429
    assert client.post("/introspect", data={"token": "x"}, headers=[BASIC]).status_code == 401
    # Preflights are not counted; another address has its own budget.
    assert client.options("/token").status_code == 204
    assert post_token(client_at(app, "127.0.1.11")).status_code == 401
    assert app.extensions["idp"].protection.metrics.value("idp_rate_limited_total", limit="ip.token") == 2


def test_every_instance_shares_the_budget_through_redis(make_app, redis_url):
    prefix = "idp-test-" + secrets.token_hex(4)
    first = make_app(rate_limit_introspection="4 per minute", redis_prefix=prefix)
    second = make_app(rate_limit_introspection="4 per minute", redis_prefix=prefix)
    a, b = client_at(first, "127.0.1.20"), client_at(second, "127.0.1.20")
    codes = [c.post("/introspect", data={"token": "x"}, headers=[BASIC]).status_code for c in (a, b, a, b, a, b)]
    if redis_url is not None:
        assert codes == [401, 401, 401, 401, 429, 429]  # one budget for the address, wherever it lands
    else:
        # Without Redis each process counts alone, which is why `idp serve` refuses
        # several workers without IDP_REDIS_URL.
        assert codes == [401] * 6


def test_a_redis_outage_fails_over_to_process_memory_and_backs_off(make_app, caplog):
    app = make_app(redis_url="redis://127.0.0.1:1/0", rate_limit_token="2 per minute")
    client = client_at(app, "127.0.1.30")
    with caplog.at_level(logging.WARNING, logger="idp.protection.ratelimits"):
        codes = [post_token(client).status_code for _ in range(5)]
    assert codes == [401, 401, 429, 429, 429]  # not open, not closed
    # Tried once, then left alone for the back-off: no connection attempt per request.
    warnings = [r for r in caplog.records if "rate limit storage unreachable" in r.getMessage()]
    assert len(warnings) == 1 and "ip.token" in warnings[0].getMessage()
