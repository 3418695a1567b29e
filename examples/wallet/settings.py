"""The wallet's settings, read once from ``WALLET_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class SettingsError(ValueError):
    """A missing or malformed variable; the message names it."""


def _amount(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise SettingsError(f"{name} must be a whole number of cents, not {raw!r}")
    return int(raw)


@dataclass(frozen=True, kw_only=True)
class WalletSettings:
    # The provider (its discovery document names the JWKS and introspection endpoints).
    issuer: str
    # This API's own URL, registered as the wallet client's resource URI (RFC 8707): the
    # only `aud` the wallet accepts. A token for the shop, or for another API, is refused.
    resource_uri: str
    # The wallet's own confidential client: it authenticates to the introspection endpoint.
    client_id: str
    client_secret: str
    # SQLite file holding balances and the ledger.
    database: Path
    # Payments above this many cents need phishing-resistant assurance (urn:idp:acr:phr).
    step_up_above: int = 5_000
    # What a new account starts with, in cents: it is a demo.
    opening_balance: int = 100_000
    currency: str = "EUR"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WalletSettings:
        env = os.environ if env is None else env
        missing = [n for n in ("WALLET_ISSUER", "WALLET_RESOURCE_URI", "WALLET_CLIENT_ID", "WALLET_CLIENT_SECRET")
                   if not env.get(n, "").strip()]
        if missing:
            raise SettingsError(f"set {', '.join(missing)}")
        return cls(
            issuer=env["WALLET_ISSUER"].strip().rstrip("/"),
            resource_uri=env["WALLET_RESOURCE_URI"].strip(),
            client_id=env["WALLET_CLIENT_ID"].strip(),
            client_secret=env["WALLET_CLIENT_SECRET"].strip(),
            database=Path(env.get("WALLET_DATABASE", "").strip() or "instance/wallet.sqlite3"),
            step_up_above=_amount(env, "WALLET_STEP_UP_ABOVE", 5_000),
            opening_balance=_amount(env, "WALLET_OPENING_BALANCE", 100_000),
        )
