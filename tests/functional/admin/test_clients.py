"""Admin API, clients: create (secret shown once), list, get, disable (its tokens die)."""

from __future__ import annotations

import json

from sqlalchemy import select

from idp.models import AuditEvent, OAuthClient
from tests.functional.admin.conftest import basic, Registered

SERVICE = {"name": "Stock sync", "grant_types": ["client_credentials"], "scope": "stock:read"}


def test_create_shows_the_secret_once_and_the_client_works(console):
    token = console.token(scope="admin:clients")
    created = console.call("POST", "/admin/clients", token, json=SERVICE)
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.get_json()
    secret, client_id = body["client_secret"], body["client_id"]
    assert created.headers["Location"] == f"/admin/clients/{client_id}"
    assert created.headers["Cache-Control"] == "no-store"
    assert body["grant_types"] == ["client_credentials"] and body["public"] is False

    # The secret is real: the new client gets a token with it.
    issued = console.http.post("/token", headers=basic(Registered(client_id, secret)),
                               data={"grant_type": "client_credentials", "scope": "stock:read"})
    assert issued.status_code == 200, issued.get_data(as_text=True)

    # ...and it is never shown again, nor its hash.
    registry = console.app.extensions["idp"]
    with registry.sessionmaker() as db:
        secret_hash = db.get(OAuthClient, client_id).secret_hash
    for path in ("/admin/clients", f"/admin/clients/{client_id}"):
        text = console.call("GET", path, token).get_data(as_text=True)
        assert secret not in text and secret_hash not in text and "client_secret" not in text
    listed = console.call("GET", "/admin/clients", token).get_json()["clients"]
    assert {c["client_id"] for c in listed} == {console.reg.client_id, client_id}
    assert console.call("GET", f"/admin/clients/{client_id}", token).get_json() == {
        k: v for k, v in body.items() if k != "client_secret"}

    with registry.sessionmaker() as db:
        (event,) = db.scalars(select(AuditEvent).where(AuditEvent.event == "admin.client_created"))
    assert event.details == {"actor": console.admin_id, "client_id": client_id}


def test_a_public_client_has_no_secret(console):
    token = console.token(scope="admin:clients")
    created = console.call("POST", "/admin/clients", token, json={
        "name": "Wallet app", "public": True, "redirect_uris": ["http://127.0.0.1/callback"]})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert "client_secret" not in created.get_json() and created.get_json()["public"] is True


def test_disable_stops_the_client_and_every_token_it_holds(console):
    token = console.token(scope="admin:clients")
    body = console.call("POST", "/admin/clients", token, json=SERVICE).get_json()
    service = Registered(body["client_id"], body["client_secret"])
    access = console.http.post("/token", headers=basic(service), data={
        "grant_type": "client_credentials", "scope": "stock:read"}).get_json()["access_token"]

    def introspect() -> bool:
        seen = console.http.post("/introspect", data={"token": access}, headers=basic(console.reg))
        return seen.get_json()["active"]

    assert introspect() is True  # the console client is first-party: it may introspect
    response = console.call("POST", f"/admin/clients/{service.client_id}/disable", token)
    assert response.status_code == 200, response.get_data(as_text=True)
    result = response.get_json()
    assert result["client_id"] == service.client_id and result["changed"] is True
    # Its token dies with it (a client's own tokens have no row to revoke: introspection
    # refuses every token of a disabled client).
    assert introspect() is False
    again = console.http.post("/token", headers=basic(service), data={"grant_type": "client_credentials"})
    assert again.status_code == 401
    shown = console.call("GET", f"/admin/clients/{service.client_id}", token).get_json()
    assert shown["disabled"] is True and shown["disabled_at"] is not None
    assert console.call("POST", "/admin/clients/nobody/disable", token).status_code == 404
    assert console.call("GET", "/admin/clients/%00", token).status_code == 404


def test_create_refuses_bad_registrations_with_a_clear_400(console):
    token = console.token(scope="admin:clients")
    cases = [
        {},
        {"name": ""},
        {"name": 5},
        {"name": "x", "grant_types": ["password"]},
        {"name": "x", "grant_types": "authorization_code"},
        {"name": "x", "redirect_uris": ["https://rp.example/cb#frag"]},
        {"name": "x", "redirect_uris": ["https://rp.example/cb"] * 21},
        {"name": "x", "public": "yes"},
        {"name": "x", "access_token_seconds": True},
        {"name": "x", "access_token_seconds": 10**30},
        {"name": "x", "scope": "a\u0000b"},
        {"name": "x\ud800", "grant_types": ["client_credentials"]},
        {"name": "x", "client_secret": "chosen"},
        {"name": "x", "grant_types": ["client_credentials"], "resource_uri": "javascript:alert(1)"},
    ]
    for case in cases:
        response = console.call("POST", "/admin/clients", token, data=json.dumps(case),
                                content_type="application/json")
        assert response.status_code == 400, (case, response.status_code, response.get_data(as_text=True))
        assert set(response.get_json()) == {"error", "error_description"}
    for raw in ("", "{", "null", "[]", '{"name": NaN}'):
        response = console.call("POST", "/admin/clients", token, data=raw, content_type="application/json")
        assert response.status_code == 400, raw
    assert console.call("GET", "/admin/clients", token).get_json()["clients"][0]["client_id"] == console.reg.client_id
    assert len(console.call("GET", "/admin/clients", token).get_json()["clients"]) == 1
