"""Server-rendered pages: sign-up, sign-in, sign-out, account. Thin: parse, call, render."""

from __future__ import annotations

from flask import Flask

from idp.web import account, auth, errors, password, reset, security, signup, sso
from idp.web import mfa
from idp.web import email_change


def init_app(app: Flask) -> None:
    security.init_app(app)
    sso.init_app(app)
    errors.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(signup.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(mfa.bp)
    app.register_blueprint(password.bp)
    app.register_blueprint(reset.bp)
    app.register_blueprint(email_change.bp)
