"""The demo client `make run` creates on first start, so a person can try a sign-in.

A public client (PKCE, no secret) with RFC 8252 loopback redirects: any local test
relying party, e.g. ``python -m http.server 8080`` reading ``?code=`` from its log, works
at http://127.0.0.1:<any port>/callback. It is third-party, so the consent page shows.
"""

from __future__ import annotations

from idp.registry import Services

DEMO_CLIENT_ID = "demo"
DEMO_REDIRECT_URIS = ("http://127.0.0.1/callback", "http://[::1]/callback")


def ensure_demo_client(services: Services) -> tuple[str, str | None]:
    """Create the demo client unless it exists; returns (client_id, secret or None).

    The secret is None because the demo client is public; an existing client's secret
    could not be returned anyway (only its hash is stored). The caller commits.
    """
    if services.clients.get(DEMO_CLIENT_ID) is None:
        services.clients.create(
            client_id=DEMO_CLIENT_ID,
            name="Demo app",
            redirect_uris=DEMO_REDIRECT_URIS,
            public=True,
            grant_types=("authorization_code", "refresh_token"),
            scope="openid email",
        )
    return DEMO_CLIENT_ID, None
