"""Who is asking: X-Forwarded-For is believed only from the proxies named in settings."""

from __future__ import annotations

import ipaddress

import pytest
from flask import Flask

from idp.settings import Settings
from idp.web.requests import client_ip, display_hint

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


class _Registry:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings


def ip_seen(*, peer: str, forwarded: str | None, trusted: str = "") -> str | None:
    app = Flask(__name__)
    proxies = tuple(ipaddress.ip_network(n) for n in trusted.split())
    app.extensions["idp"] = _Registry(Settings(trusted_proxies=proxies))
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    with app.test_request_context("/", headers=headers, environ_base={"REMOTE_ADDR": peer}):
        return client_ip()


def test_without_trusted_proxies_the_header_is_ignored():
    assert ip_seen(peer="203.0.113.9", forwarded="1.2.3.4") == "203.0.113.9"


def test_header_from_an_untrusted_peer_is_ignored():
    assert ip_seen(peer="203.0.113.9", forwarded="1.2.3.4", trusted="10.0.0.0/8") == "203.0.113.9"


def test_the_rightmost_untrusted_hop_is_the_client():
    # The client forged "1.2.3.4"; our proxy appended the address it really saw.
    assert ip_seen(peer="10.0.0.2", forwarded="1.2.3.4, 198.51.100.7, 10.0.0.1",
                   trusted="10.0.0.0/8") == "198.51.100.7"


def test_a_malformed_chain_falls_back_to_the_peer():
    assert ip_seen(peer="10.0.0.2", forwarded="not-an-ip, 10.0.0.1", trusted="10.0.0.0/8") == "10.0.0.2"


def test_all_hops_trusted_gives_the_leftmost():
    assert ip_seen(peer="10.0.0.2", forwarded="10.0.0.9, 10.0.0.1", trusted="10.0.0.0/8") == "10.0.0.9"


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("alice@example.com", "alice@example.com"),
        (None, ""),
        ("a" * 255, ""),
        ("alice\x1b[31m@example.com", ""),
        ("alice\u202e@example.com", ""),
        ("alice\x00@example.com", ""),
    ],
)
def test_display_hint_drops_what_should_not_be_echoed(value, shown):
    assert display_hint(value) == shown
