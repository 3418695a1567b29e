"""JWKS and discovery are served from bytes built once (issue 3), with a strong ETag:
a cache revalidates with If-None-Match and gets 304 while nothing changed, and the new
document as soon as a key is published or retired."""

from __future__ import annotations

from flask.testing import FlaskClient

from idp.web.requests import services


def kids(response) -> set[str]:  # type: ignore[no-untyped-def]
    return {k["kid"] for k in response.get_json(force=True)["keys"]}


def test_jwks_revalidates_with_its_etag_until_a_key_changes(app, client: FlaskClient):
    first = client.get("/jwks.json")
    etag = first.headers["ETag"]
    assert first.status_code == 200 and etag.startswith('"') and etag.endswith('"')
    assert first.mimetype == "application/jwk-set+json"

    again = client.get("/jwks.json", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == first.headers["Cache-Control"]
    # Another tag, or a list without ours, gets the document.
    assert client.get("/jwks.json", headers={"If-None-Match": '"other"'}).status_code == 200
    assert client.get("/jwks.json", headers={"If-None-Match": 'W/"x", "y"'}).data == first.data

    with app.test_request_context():
        services().signing_keys.rotate()  # promotes the standby, publishes a new standby
        services().db.commit()
    rotated = client.get("/jwks.json", headers={"If-None-Match": etag})
    assert rotated.status_code == 200 and rotated.headers["ETag"] != etag
    published = kids(rotated) - kids(first)
    assert len(published) == 1 and kids(first) <= kids(rotated)

    with app.test_request_context():
        services().signing_keys.retire(published.pop())
        services().db.commit()
    retired = client.get("/jwks.json", headers={"If-None-Match": rotated.headers["ETag"]})
    assert retired.status_code == 200 and kids(retired) == kids(first)
    assert retired.headers["ETag"] == etag  # the same set as before: the same tag


def test_discovery_revalidates_with_its_etag(client: FlaskClient):
    first = client.get("/.well-known/openid-configuration")
    assert first.status_code == 200 and first.get_json()["token_endpoint"].endswith("/token")
    etag = first.headers["ETag"]
    again = client.get("/.well-known/openid-configuration", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag
    # RFC 8414's name for the same document.
    assert client.get("/.well-known/oauth-authorization-server").data == first.data
    assert client.get("/.well-known/openid-configuration", headers={"If-None-Match": '"x"'}).data == first.data
