"""The shop: signs people in through the provider and pays through the wallet.

``create_app()`` reads ``SHOP_*`` variables (examples/shop/settings.py); tests pass a
``ShopSettings``. Sign-in is Authlib's OpenID Connect client: authorization code with
PKCE S256, ``state`` and ``nonce``, the ID token checked (signature against the JWKS,
``iss aud exp nonce at_hash``) and the ``iss`` of the authorization response compared
with the issuer (RFC 9207). The access token is asked for the wallet (``resource``,
RFC 8707), so the wallet is its audience and the shop only carries it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from authlib.integrations.flask_client import OAuth
from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect

from examples.shop.settings import ShopSettings

SCOPE = "openid email wallet:pay"


def create_app(settings: ShopSettings | None = None) -> Flask:
    from examples.shop import views
    from examples.shop.wallet_client import WalletClient

    settings = settings or ShopSettings.from_env()
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Its own cookie name: the provider's and the wallet's never collide with it.
        SESSION_COOKIE_NAME="shop_session",
        SESSION_COOKIE_HTTPONLY=True,
        # Lax, not Strict: the provider's redirect back to /callback is a cross-site
        # top-level navigation, and it must carry the cookie that holds state and nonce.
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.cookie_secure,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=16 * 1024,
    )
    CSRFProtect(app)
    oauth = OAuth(app)
    provider = oauth.register(
        "idp",
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        server_metadata_url=settings.issuer + "/.well-known/openid-configuration",
        client_kwargs={
            "scope": SCOPE,
            "code_challenge_method": "S256",
            "token_endpoint_auth_method": "client_secret_basic",
        },
    )
    app.extensions["shop"] = views.Shop(settings=settings, provider=provider, wallet=WalletClient(settings.wallet_url))
    app.register_blueprint(views.bp)

    issuer = urlsplit(settings.issuer)
    provider_origin = f"{issuer.scheme}://{issuer.netloc}"

    @app.after_request
    def security_headers(response: Response) -> Response:
        # Buying can end in a redirect to the provider (sign-in, step-up): browsers check
        # form-action on every redirect after a form post, so the provider is allowed too.
        response.headers.setdefault(
            "Content-Security-Policy",
            f"default-src 'none'; form-action 'self' {provider_origin}; frame-ancestors 'none'; base-uri 'none'",
        )
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    return app
