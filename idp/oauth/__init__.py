"""The OAuth 2.0 / OpenID Connect provider: Authlib's server classes on our models.

One module per endpoint (authorize, token, introspection, revocation, userinfo,
discovery, jwks, end_session), grants as thin Authlib subclasses (grants.py), the
interaction decision (interaction.py) and the wiring (server.py).
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, g, request


def init_app(app: Flask) -> None:
    from idp.keys.service import ensure_keys_at_start
    from idp.oauth import authorize, discovery, end_session, introspection, jwks, revocation, server, token, userinfo
    from idp.web import consents
    from idp.web.security import csrf

    server.init_app(app)
    # Authlib's grants log every issued token at DEBUG ("Issue token %r to %r":
    # rfc6749/grants/authorization_code.py, refresh_token.py): access and refresh tokens
    # must never reach the application log, so its loggers stop at INFO, whatever the
    # root level (tests/functional/test_audit_secrets.py).
    authlib_log = logging.getLogger("authlib")
    if authlib_log.level < logging.INFO:  # unset (0) or DEBUG
        authlib_log.setLevel(logging.INFO)
    for module in (authorize, token, introspection, revocation, userinfo, discovery, jwks, end_session):
        app.register_blueprint(module.bp)
    app.register_blueprint(consents.bp)  # the account page's "withdraw access" buttons
    # Machine-to-machine endpoints authenticate the client, not a browser: no CSRF token.
    for view in (token.token, introspection.introspect, revocation.revoke, userinfo.userinfo):
        csrf.exempt(view)

    @app.before_request
    def _form_action_for_authorize_next() -> None:
        # The raw query string first: parsing it for every request was a measurable
        # share of an API call (issue 3), and most requests have none.
        if request.method == "GET" and b"next" in request.query_string and "next" in request.args:
            authorize.widen_form_action_for_next()

    @app.context_processor
    def _consents() -> dict[str, Any]:
        return {"oauth_consents": _consents_of_current_user}

    registry = app.extensions["idp"]
    ensure_keys_at_start(registry.sessionmaker, registry.kek, registry.key_cache)


def _consents_of_current_user() -> list[tuple[Any, str]]:
    """(consent, client name) pairs for the account page."""
    from idp.web.requests import services

    user = g.get("user")
    if user is None:
        return []
    consents = services().consents.for_user(user.id)
    clients = services().clients.by_ids(c.client_id for c in consents)
    return [(c, clients[c.client_id].name if c.client_id in clients else c.client_id) for c in consents]
