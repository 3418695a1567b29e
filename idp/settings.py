"""The one settings object: read once from ``IDP_*`` environment variables, frozen.

Every default and its one-line reason lives here (DESIGN section 5 names the contract
variables). ``Settings.from_env()`` validates everything at start-up so that a bad value
stops the process with one clear line instead of failing on the first request.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ENVIRONMENTS = ("development", "testing", "production")
MFA_POLICIES = ("required", "optional")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")

# argon2id floor outside tests: OWASP Password Storage Cheat Sheet's minimum
# (m=19 MiB, t=2). Anything weaker is refused at start-up.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_TIME_COST = 2


class SettingsError(ValueError):
    """A configuration value is missing or invalid; the message names the variable."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name} must be true or false, not {raw!r}")


def _int(name: str, raw: str, *, minimum: int = 0) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, not {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, not {value}")
    return value


def _networks(name: str, raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    nets = []
    for part in raw.replace(",", " ").split():
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise SettingsError(f"{name}: {part!r} is not an IP address or network") from None
    return tuple(nets)


@dataclass(frozen=True, kw_only=True)
class Settings:
    # development | testing | production. Production refuses insecure transport.
    env: str = "development"
    # Public base URL; `iss` of every token. WebAuthn needs a domain, hence localhost.
    issuer: str = "http://localhost:5000"
    # SQLAlchemy URL. Embedded default: a SQLite file under instance/.
    database_url: str = "sqlite:///instance/idp.sqlite3"
    # Counters (rate limits, attack protection). None: in-process memory (one process only).
    redis_url: str | None = None
    # Folder of the key-encryption key (generated on first start, mode 0600).
    keys_dir: Path = Path("keys")
    # Base64 key-encryption key from a secret store; overrides the file in keys_dir.
    kek: str | None = field(default=None, repr=False)
    # required: every account has a second factor. optional: the user decides.
    mfa_policy: str = "required"
    # Peers whose X-Forwarded-For is believed (read right to left). Empty: none.
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    # smtp://user:pass@host:port or smtps://...; None: mail goes to the file outbox.
    smtp_url: str | None = field(default=None, repr=False)
    # Folder where each outgoing mail is written as one .eml file (embedded mode).
    mail_outbox: Path = Path("instance/outbox")
    # From: header of outgoing mail.
    mail_from: str = "idp <no-reply@localhost>"
    # Name shown to people and rejected as a password (context word).
    service_name: str = "idp"
    # SSO session: signed out after this long without a request (Keycloak's default).
    session_idle_seconds: int = 30 * 60
    # SSO session: signed out this long after sign-in whatever the activity.
    session_max_seconds: int = 10 * 60 * 60
    # Email verification link lifetime.
    email_verification_seconds: int = 24 * 60 * 60
    # argon2id cost: RFC 9106 section 4 "second recommended option" (64 MiB, t=3, p=4),
    # argon2-cffi's default profile. About 50-100 ms on one server core pair: slow for
    # an offline attacker, affordable at sign-in rates (see benchmarks/RESULTS.md).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4
    # Largest request body accepted (413 beyond): forms are small, uploads do not exist.
    max_content_length: int = 64 * 1024

    # ---------------------------------------------------------------- derived
    @property
    def issuer_host(self) -> str:
        return urlsplit(self.issuer).hostname or ""

    @property
    def is_local_http(self) -> bool:
        """Plain http on a loopback name: the only place cookies go without Secure."""
        parts = urlsplit(self.issuer)
        return parts.scheme == "http" and (parts.hostname or "") in LOCAL_HOSTS

    @property
    def testing(self) -> bool:
        return self.env == "testing"

    def replace(self, **changes: object) -> Settings:
        new = dataclasses.replace(self, **changes)
        new.validate()
        return new

    # ------------------------------------------------------------- validation
    def validate(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise SettingsError(f"IDP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {self.env!r}")
        if self.mfa_policy not in MFA_POLICIES:
            raise SettingsError(
                f"IDP_MFA_POLICY must be one of {', '.join(MFA_POLICIES)}, not {self.mfa_policy!r}"
            )
        parts = urlsplit(self.issuer)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SettingsError(f"IDP_ISSUER must be an absolute http(s) URL, not {self.issuer!r}")
        if parts.query or parts.fragment or self.issuer.endswith("/"):
            raise SettingsError("IDP_ISSUER must have no query, fragment or trailing slash")
        if parts.scheme == "http" and not self.is_local_http:
            raise SettingsError("IDP_ISSUER must use https unless it is on localhost")
        if self.env == "production" and parts.scheme != "https":
            raise SettingsError("IDP_ENV=production requires an https IDP_ISSUER")
        if not self.testing and (
            self.argon2_memory_kib < ARGON2_MIN_MEMORY_KIB or self.argon2_time_cost < ARGON2_MIN_TIME_COST
        ):
            raise SettingsError("argon2 parameters below the OWASP minimum are allowed only in tests")
        if self.session_idle_seconds > self.session_max_seconds:
            raise SettingsError("IDP_SESSION_IDLE_SECONDS cannot exceed IDP_SESSION_MAX_SECONDS")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        def text(key: str, attr: str) -> None:
            if (raw := env.get(key)) is not None and raw.strip():
                values[attr] = raw.strip()

        def number(key: str, attr: str, minimum: int = 1) -> None:
            if (raw := env.get(key)) is not None and raw.strip():
                values[attr] = _int(key, raw, minimum=minimum)

        text("IDP_ENV", "env")
        text("IDP_ISSUER", "issuer")
        text("IDP_DATABASE_URL", "database_url")
        text("IDP_REDIS_URL", "redis_url")
        text("IDP_KEK", "kek")
        text("IDP_MFA_POLICY", "mfa_policy")
        text("IDP_SMTP_URL", "smtp_url")
        text("IDP_MAIL_FROM", "mail_from")
        text("IDP_SERVICE_NAME", "service_name")
        if raw := env.get("IDP_KEYS_DIR"):
            values["keys_dir"] = Path(raw)
        if raw := env.get("IDP_MAIL_OUTBOX"):
            values["mail_outbox"] = Path(raw)
        if raw := env.get("IDP_TRUSTED_PROXIES"):
            values["trusted_proxies"] = _networks("IDP_TRUSTED_PROXIES", raw)
        number("IDP_SESSION_IDLE_SECONDS", "session_idle_seconds")
        number("IDP_SESSION_MAX_SECONDS", "session_max_seconds")
        number("IDP_EMAIL_VERIFICATION_SECONDS", "email_verification_seconds")
        number("IDP_ARGON2_TIME_COST", "argon2_time_cost")
        number("IDP_ARGON2_MEMORY_KIB", "argon2_memory_kib", minimum=8)
        number("IDP_ARGON2_PARALLELISM", "argon2_parallelism")
        number("IDP_MAX_CONTENT_LENGTH", "max_content_length", minimum=1024)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings
