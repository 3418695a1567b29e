"""Whose address is it: X-Forwarded-For is believed only from IDP_TRUSTED_PROXIES,
read right to left. Checked through what the rate limits and the audit log see."""

from __future__ import annotations

import ipaddress

import pytest
from flask import Flask

from idp.web.requests import client_ip


def ip_seen(app: Flask, peer: str, *forwarded: str) -> str | None:
    headers = [("X-Forwarded-For", value) for value in forwarded]
    with app.test_request_context("/login", environ_base={"REMOTE_ADDR": peer}, headers=headers):
        return client_ip()


@pytest.fixture
def proxied(make_app) -> Flask:  # type: ignore[no-untyped-def]
    return make_app(trusted_proxies=(ipaddress.ip_network("127.0.0.250/31"),))


def test_forged_forwarded_for_from_an_untrusted_peer_is_ignored(proxied):
    assert ip_seen(proxied, "127.0.0.23", "203.0.113.9") == "127.0.0.23"
    assert ip_seen(proxied, "127.0.0.23", "127.0.0.250, 203.0.113.9") == "127.0.0.23"


def test_no_proxy_trusted_means_the_socket_address_always(make_app):
    app = make_app()
    assert ip_seen(app, "127.0.0.23", "203.0.113.9") == "127.0.0.23"


def test_trusted_proxy_chain_is_read_right_to_left(proxied):
    # client forged "1.1.1.1"; the outer proxy saw 198.51.100.7; the inner one is trusted.
    assert ip_seen(proxied, "127.0.0.250", "1.1.1.1, 198.51.100.7, 127.0.0.251") == "198.51.100.7"
    assert ip_seen(proxied, "127.0.0.251", "198.51.100.7") == "198.51.100.7"


def test_a_forged_header_line_cannot_shadow_the_proxys_line(proxied):
    # Some proxies add their own X-Forwarded-For line instead of appending to the client's.
    assert ip_seen(proxied, "127.0.0.250", "1.1.1.1", "198.51.100.7") == "198.51.100.7"


def test_malformed_or_missing_chain_falls_back_to_the_peer(proxied):
    assert ip_seen(proxied, "127.0.0.250", "1.1.1.1, not-an-ip") == "127.0.0.250"
    assert ip_seen(proxied, "127.0.0.250") == "127.0.0.250"


def test_addresses_are_canonical_so_one_client_is_one_counter(proxied):
    assert ip_seen(proxied, "127.0.0.250", "2001:DB8:0:0::1") == "2001:db8::1"


def test_only_trusted_hops_means_the_leftmost(proxied):
    assert ip_seen(proxied, "127.0.0.250", "127.0.0.251, 127.0.0.250") == "127.0.0.251"


def test_rate_limits_and_rules_key_on_the_forwarded_address(make_app):
    """End to end: through a trusted proxy, two clients get two budgets; a forging
    client talking to us directly still gets its own socket address's budget."""
    app = make_app(trusted_proxies=(ipaddress.ip_network("127.0.0.250/32"),), rate_limit_login="2 per minute")
    proxy = app.test_client()
    proxy.environ_base["REMOTE_ADDR"] = "127.0.0.250"

    def post(client, forwarded: str | None = None) -> int:  # type: ignore[no-untyped-def]
        headers = {"X-Forwarded-For": forwarded} if forwarded else {}
        return client.post("/login", data={"username": "a@example.com", "password": "x"}, headers=headers).status_code

    app.config["WTF_CSRF_ENABLED"] = False
    assert [post(proxy, "198.51.100.1") for _ in range(3)][-1] == 429
    assert post(proxy, "198.51.100.2") != 429  # another client behind the same proxy
    direct = app.test_client()
    direct.environ_base["REMOTE_ADDR"] = "127.0.0.23"
    assert [post(direct, "198.51.100.2") for _ in range(3)][-1] == 429  # keyed on 127.0.0.23
    assert post(proxy, "198.51.100.2") != 429  # the forged header did not spend .2's budget
