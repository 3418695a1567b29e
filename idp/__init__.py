"""idp: an OpenID Connect provider built on the assumption that the attacker has the password."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from idp.notify.mailer import Mailer
    from idp.settings import Settings

__all__ = ["create_app"]


def create_app(settings: Settings | None = None, *, mailer: Mailer | None = None) -> Flask:
    """Build the application. Tests call this directly with their own settings."""
    # Imported here, not at the top: every `idp` command imports this package, and
    # `idp --help` or a bad IDP_ variable should answer at once, without loading Flask,
    # SQLAlchemy and every service first.
    from flask import Flask

    from idp.registry import STATIC_DIR, TEMPLATES_DIR, Registry
    from idp.settings import Settings

    settings = settings or Settings.from_env()
    registry = Registry.build(settings, mailer=mailer)

    app = Flask(
        __name__,
        template_folder=str(TEMPLATES_DIR),
        static_folder=str(STATIC_DIR),
        static_url_path="/static",
    )
    app.extensions["idp"] = registry
    app.config.update(
        SECRET_KEY=registry.kek.derive("flask-secret-key"),
        MAX_CONTENT_LENGTH=settings.max_content_length,
        MAX_FORM_MEMORY_SIZE=settings.max_content_length,
        TESTING=settings.testing,
    )

    from idp import health, web

    web.init_app(app)
    health.init_app(app)

    from idp import oauth

    oauth.init_app(app)

    from idp import admin

    admin.init_app(app)

    from idp import protection

    # Last: rate limits are applied by endpoint name to every view registered above.
    protection.init_app(app)
    return app
