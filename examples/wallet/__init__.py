"""The wallet: balances and a payments API, on the provider's access tokens.

``create_app()`` reads ``WALLET_*`` variables (examples/wallet/settings.py); tests pass
a ``WalletSettings``. The API (examples/wallet/api.py) accepts only tokens whose ``aud``
is the wallet's own resource URI.
"""

from __future__ import annotations

from flask import Flask

from examples.wallet.settings import WalletSettings


def create_app(settings: WalletSettings | None = None) -> Flask:
    from examples.wallet import api
    from examples.wallet.ledger import Ledger

    settings = settings or WalletSettings.from_env()
    app = Flask(__name__)
    app.config.update(
        # The wallet sets no cookie; the name still differs from the shop's and the provider's.
        SESSION_COOKIE_NAME="wallet_session",
        MAX_CONTENT_LENGTH=4 * 1024,
    )
    validator = api.make_validator(settings)
    app.extensions["wallet"] = api.Wallet(
        settings=settings,
        ledger=Ledger(settings.database, opening_balance=settings.opening_balance),
        validator=validator,
    )
    api.init_app(app, validator)
    return app
