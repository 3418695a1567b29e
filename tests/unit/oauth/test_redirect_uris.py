"""Redirect URI registration and matching rules (RFC 9700 §4.1.3, RFC 8252 §7)."""

from __future__ import annotations

import pytest

from idp.clients.redirect_uris import matches, origin_of, validate_for_registration
from idp.errors import InvalidInput

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


@pytest.mark.parametrize(
    ("uri", "public"),
    [
        ("https://rp.example/cb", False),
        ("https://rp.example:8443/cb?tenant=a", False),
        ("http://127.0.0.1/callback", True),
        ("http://[::1]/callback", True),
        ("http://localhost:8080/callback", False),
        ("com.example.wallet:/callback", True),
    ],
)
def test_registrable(uri, public):
    assert validate_for_registration(uri, public=public) == uri


@pytest.mark.parametrize(
    ("uri", "public"),
    [
        ("http://rp.example/cb", False),  # plain http off loopback
        ("https://rp.example/cb#frag", False),
        ("https://*.rp.example/cb", False),
        ("https://user:pw@rp.example/cb", False),
        ("javascript:alert(1)", True),
        ("myapp:/callback", True),  # not reverse-DNS
        ("com.example.wallet:/callback", False),  # private-use scheme on a confidential client
        ("com.example.wallet://host/callback", True),
        ("https://rp.example/c b", False),
        ("", False),
        ("https://rp.example/" + "a" * 3000, False),
        ("https://rp.example:99999/cb", False),
    ],
)
def test_not_registrable(uri, public):
    with pytest.raises(InvalidInput):
        validate_for_registration(uri, public=public)


def test_exact_match_only():
    registered = ["https://rp.example/cb"]
    assert matches(registered, "https://rp.example/cb", public=False)
    for other in ("https://rp.example/cb/", "https://rp.example/CB", "https://RP.example/cb", "https://rp.example/cb?x=1",
                  "https://rp.example:443/cb", "https://rp.example/cb#", "https://rp.example/c", ""):
        assert not matches(registered, other, public=False), other


def test_loopback_port_varies_for_public_clients_only():
    registered = ["http://127.0.0.1/callback", "http://[::1]/cb"]
    assert matches(registered, "http://127.0.0.1:51000/callback", public=True)
    assert matches(registered, "http://[::1]:8080/cb", public=True)
    assert not matches(registered, "http://127.0.0.1:51000/callback", public=False)
    for other in ("http://127.0.0.1:51000/callback/x", "http://127.0.0.1:51000/callback?x", "http://localhost:5/callback",
                  "http://127.0.0.1:0/callback", "http://127.0.0.1:70000/callback", "http://a@127.0.0.1:5/callback",
                  "https://127.0.0.1:5/callback", "http://127.0.0.1:5/callback#x", "http://[::1]:5/callback"):
        assert not matches(registered, other, public=True), other


def test_origin_of():
    assert origin_of("https://spa.example:8443/cb?x") == "https://spa.example:8443"
    assert origin_of("com.example.app:/cb") is None
