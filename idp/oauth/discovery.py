"""Provider metadata: OpenID Connect Discovery 1.0 §3 and RFC 8414 §2.

Every endpoint listed here exists and works (DESIGN section 5). ``acr_values_supported``
is idp/assurance.py's list, weakest first.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from flask import Blueprint

from idp.assurance import ACR_VALUES
from idp.crypto.tokens import strong_etag
from idp.keys.jose import ALGORITHMS
from idp.oauth.server import cacheable_document, cors
from idp.web.requests import settings

bp = Blueprint("oauth_discovery", __name__)

CACHE_SECONDS = 300


def metadata(issuer: str) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": issuer + "/authorize",
        "token_endpoint": issuer + "/token",
        "userinfo_endpoint": issuer + "/userinfo",
        "jwks_uri": issuer + "/jwks.json",
        "introspection_endpoint": issuer + "/introspect",
        "revocation_endpoint": issuer + "/revoke",
        "end_session_endpoint": issuer + "/end-session",
        "scopes_supported": ["openid", "email"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ALGORITHMS),
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash", "sid",
            "email", "email_verified",
        ],
        "acr_values_supported": list(ACR_VALUES),
        "prompt_values_supported": ["none", "login", "consent"],
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": True,
        # OpenID Connect Back-Channel Logout 1.0 §2.1: logout tokens always carry `sid`.
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
    }


@bp.get("/.well-known/openid-configuration")
@bp.get("/.well-known/oauth-authorization-server")
def configuration():  # type: ignore[no-untyped-def]
    body, etag = document(settings().issuer)
    response = cacheable_document(body, etag, mimetype="application/json", max_age=CACHE_SECONDS)
    return cors(response, any_client=True)


@functools.lru_cache(maxsize=8)
def document(issuer: str) -> tuple[bytes, str]:
    """The metadata as served and its strong ETag: it depends on the issuer only, so it
    is serialised once per process (issue 3: discovery is fetched often, never changes)."""
    body = json.dumps(metadata(issuer), separators=(",", ":")).encode()
    return body, strong_etag(body)

