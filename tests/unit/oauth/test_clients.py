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


# ---------------------------------------------------------------- the client cache
def test_the_snapshot_copies_every_column_and_cannot_be_changed(services):
    import dataclasses

    from idp.clients.service import ClientInfo
    from idp.models import OAuthClient

    columns = {c.key for c in OAuthClient.__mapper__.column_attrs}
    assert {f.name for f in dataclasses.fields(ClientInfo)} == columns  # a new column must be added there too
    client, _ = services.clients.create(name="Shop", redirect_uris=["https://rp.example/cb"])
    services.db.commit()
    info = services.clients.get(client.id)
    assert info.redirect_uris == ("https://rp.example/cb",) and not info.public
    with pytest.raises(dataclasses.FrozenInstanceError):
        info.disabled_at = "now"  # type: ignore[misc]


def test_a_client_disabled_in_this_process_is_refused_at_once(services):
    from idp.db import utcnow
    from idp.models import OAuthClient

    client, _ = services.clients.create(name="Shop", redirect_uris=["https://rp.example/cb"], resource_uri="https://shop.example/api")
    services.db.commit()
    assert services.clients.get(client.id) is not None
    assert services.clients.by_resource("https://shop.example/api") is not None
    services.db.get(OAuthClient, client.id).disabled_at = utcnow()
    assert services.clients.get(client.id) is not None  # not yet committed: nothing changed for anyone
    services.db.commit()
    assert services.clients.get(client.id) is None
    assert services.clients.by_resource("https://shop.example/api") is None


def test_a_client_disabled_by_another_process_is_refused_within_the_cache_lifetime(services, app):
    from sqlalchemy import create_engine, text

    from idp.clients.service import CACHE_SECONDS

    client, _ = services.clients.create(name="Shop", redirect_uris=["https://rp.example/cb"])
    services.db.commit()
    cache = services.clients.cache
    now = [1000.0]
    cache.clock = lambda: now[0]
    try:
        assert services.clients.get(client.id) is not None  # cached from here on
        # Another process: plain SQL on its own connection, no SQLAlchemy session events here.
        other = create_engine(app.extensions["idp"].settings.database_url.replace("postgresql://", "postgresql+psycopg://"))
        with other.begin() as conn:
            conn.execute(text("UPDATE oauth_clients SET disabled_at = CURRENT_TIMESTAMP WHERE id = :id"), {"id": client.id})
        other.dispose()
        now[0] += CACHE_SECONDS - 0.5
        assert services.clients.get(client.id) is not None  # the stale window, at most CACHE_SECONDS
        now[0] += 1.0
        assert services.clients.get(client.id) is None
    finally:
        cache.clock = __import__("time").monotonic
        cache.clear()
