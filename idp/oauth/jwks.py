"""The JSON Web Key Set: RFC 7517 §5, published at the discovery ``jwks_uri``.

It lists the ``next`` and ``active`` keys (idp/keys): a key is published
``IDP_KEY_UPCOMING_SECONDS`` before it signs, and caches are told to keep this no longer
than that (and never longer than ``CACHE_SECONDS``), so a relying party that honours
Cache-Control has every new ``kid`` before the first token that carries it. The same
max-age bounds how long such a party still trusts a key retired in an emergency.
"""

from __future__ import annotations

from flask import Blueprint, request

from idp.oauth.server import cacheable_document, cors, preflight
from idp.web.requests import services

bp = Blueprint("oauth_jwks", __name__)

CACHE_SECONDS = 300


@bp.route("/jwks.json", methods=["GET", "OPTIONS"])
def jwks():  # type: ignore[no-untyped-def]
    if request.method == "OPTIONS":
        return preflight("GET")
    # The ring is compared with the database on every request (an emergency retire leaves
    # the JWKS at once); its serialised form and ETag are built once per ring.
    body, etag = services().signing_keys.ring().jwks_document
    max_age = min(CACHE_SECONDS, services().registry.settings.key_upcoming_seconds)
    response = cacheable_document(body, etag, mimetype="application/jwk-set+json", max_age=max_age)
    return cors(response, any_client=True)
