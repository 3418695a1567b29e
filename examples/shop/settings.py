"""The shop's settings, read once from ``SHOP_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A missing or malformed variable; the message names it."""


@dataclass(frozen=True, kw_only=True)
class ShopSettings:
    # The provider; its discovery document names every endpoint.
    issuer: str
    # The shop's confidential client (first-party: no consent page).
    client_id: str
    client_secret: str = field(repr=False)
    # Where people reach the shop; the redirect URI is this + /callback, registered exactly.
    public_url: str
    # The wallet's base URL: the API the shop pays through, and the resource (RFC 8707)
    # its access tokens are asked for, so that their aud is the wallet.
    wallet_url: str
    # Signs the shop's session cookie.
    secret_key: str = field(repr=False)

    @property
    def redirect_uri(self) -> str:
        return self.public_url + "/callback"

    @property
    def cookie_secure(self) -> bool:
        return urlsplit(self.public_url).scheme == "https"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ShopSettings:
        env = os.environ if env is None else env
        names = ("SHOP_ISSUER", "SHOP_CLIENT_ID", "SHOP_CLIENT_SECRET", "SHOP_PUBLIC_URL", "SHOP_WALLET_URL",
                 "SHOP_SECRET_KEY")
        missing = [n for n in names if not env.get(n, "").strip()]
        if missing:
            raise SettingsError(f"set {', '.join(missing)}")
        if len(env["SHOP_SECRET_KEY"].strip()) < 32:
            raise SettingsError("SHOP_SECRET_KEY must be at least 32 random characters")
        return cls(
            issuer=env["SHOP_ISSUER"].strip().rstrip("/"),
            client_id=env["SHOP_CLIENT_ID"].strip(),
            client_secret=env["SHOP_CLIENT_SECRET"].strip(),
            public_url=env["SHOP_PUBLIC_URL"].strip().rstrip("/"),
            wallet_url=env["SHOP_WALLET_URL"].strip(),
            secret_key=env["SHOP_SECRET_KEY"].strip(),
        )
