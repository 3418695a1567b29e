"""The client service: secrets hashed, grant types and redirect URIs checked."""

from __future__ import annotations

import pytest

from idp.clients.demo import ensure_demo_client
from idp.errors import InvalidInput


@pytest.fixture
def services(app):
    registry = app.extensions["idp"]
    db = registry.sessionmaker()
    yield registry.services(db)
    db.close()


def test_secret_is_stored_as_sha256_and_verified_in_constant_time(services):
    client, secret = services.clients.create(name="Shop", redirect_uris=["https://rp.example/cb"])
    assert secret and client.secret_hash != secret and len(client.secret_hash) == 64
    assert services.clients.verify_secret(client, secret)
    assert not services.clients.verify_secret(client, secret + "x")
    assert not services.clients.verify_secret(client, None)


def test_public_client_has_no_secret(services):
    client, secret = services.clients.create(name="App", redirect_uris=["com.example.app:/cb"], public=True)
    assert secret is None and client.public
    assert not services.clients.verify_secret(client, "anything")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"grant_types": ["password"]},
        {"grant_types": ["implicit"]},
        {"grant_types": ["client_credentials"], "public": True},
        {"redirect_uris": []},
        {"scope": "bad\"scope"},
        {"id_token_alg": "HS256"},
        {"id_token_alg": "none"},
        {"min_acr": "gold"},
        {"access_token_seconds": 86400},
        {"name": " "},
    ],
)
def test_refused_registrations(services, kwargs):
    values = {"name": "X", "redirect_uris": ["https://rp.example/cb"], **kwargs}
    with pytest.raises(InvalidInput):
        services.clients.create(**values)


def test_cors_origins_come_from_redirect_uris(services):
    client, _ = services.clients.create(name="SPA", redirect_uris=["https://spa.example/cb"], public=True)
    assert services.clients.origin_allowed("https://spa.example", client_id=client.id)
    assert services.clients.origin_allowed("https://spa.example")
    assert not services.clients.origin_allowed("https://evil.example")
    assert not services.clients.origin_allowed("https://spa.example", client_id="other")


def test_demo_client_is_created_once(services):
    assert ensure_demo_client(services) == ("demo", None)
    services.db.commit()
    assert ensure_demo_client(services) == ("demo", None)
    demo = services.clients.get("demo")
    assert demo.public and not demo.first_party
