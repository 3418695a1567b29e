"""The JSON Web Key Set: RFC 7517 §5, published at the discovery ``jwks_uri``.

It lists the ``next`` and ``active`` keys (idp/keys): a key is published before it
signs, so a client caching this for ``CACHE_SECONDS`` never meets an unknown ``kid``.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from idp.oauth.server import cors, preflight
from idp.web.requests import services

bp = Blueprint("oauth_jwks", __name__)

CACHE_SECONDS = 300


@bp.route("/jwks.json", methods=["GET", "OPTIONS"])
def jwks():  # type: ignore[no-untyped-def]
    if request.method == "OPTIONS":
        return preflight("GET")
    response = jsonify(services().signing_keys.ring().jwks())
    response.headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
    response.mimetype = "application/jwk-set+json"
    return cors(response, any_client=True)
