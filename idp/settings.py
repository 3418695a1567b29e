"""The one settings object: read once from ``IDP_*`` environment variables, frozen.

Every default and its one-line reason lives here (DESIGN section 5 names the contract
variables). ``Settings.from_env()`` validates everything at start-up so that a bad value
stops the process with one clear line instead of failing on the first request.
"""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from limits import parse_many

ENVIRONMENTS = ("development", "testing", "production")
MFA_POLICIES = ("required", "optional")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]", "::1")

# argon2id floor outside tests: OWASP Password Storage Cheat Sheet's minimum
# (m=19 MiB, t=2). Anything weaker is refused at start-up.
ARGON2_MIN_MEMORY_KIB = 19 * 1024
ARGON2_MIN_TIME_COST = 2


# Settings read as IDP_<NAME UPPER CASE> (see Settings for each one's reason).
RATE_LIMIT_FIELDS = (
    "rate_limit_login", "rate_limit_mfa", "rate_limit_signup", "rate_limit_reset",
    "rate_limit_signin_link", "rate_limit_token", "rate_limit_introspection", "rate_limit_factor",
)
PROTECTION_NUMBER_FIELDS = (
    "ip_user_failure_limit", "ip_user_block_seconds", "ip_failure_capacity", "ip_failure_regain_seconds",
    "account_failure_limit", "account_failure_window_seconds", "device_cookie_days", "signin_link_seconds",
)


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
    # Password reset link a person asked for: short, it sits in a mailbox (issue 7).
    password_reset_seconds: int = 20 * 60
    # Reset link in the mail of an operator's force-reset: people read a mass mail hours
    # later; once it expires, /reset mails a fresh 20-minute link to the same address.
    force_reset_link_seconds: int = 24 * 60 * 60
    # argon2id cost: RFC 9106 section 4 "second recommended option" (64 MiB, t=3, p=4),
    # argon2-cffi's default profile. About 50-100 ms on one server core pair: slow for
    # an offline attacker, affordable at sign-in rates (see benchmarks/RESULTS.md).
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 64 * 1024
    argon2_parallelism: int = 4
    # Largest request body accepted (413 beyond): forms are small, uploads do not exist.
    max_content_length: int = 64 * 1024
    # `idp serve`'s access log (path without query string; idp/server.py). On by default;
    # behind a proxy that logs every request already, off saves about a tenth of the CPU
    # of a token request (benchmarks/RESULTS.md, session 3).
    access_log: bool = True

    # --------------------------------------------- breached passwords (idp/breached/)
    # Filter written by `idp breached import`; until it exists, the list shipped in
    # idp/breached/data/ (20,000 common breached passwords) is the corpus.
    breached_corpus: Path = Path("instance/breached-passwords.idpbf")
    # How often a running worker looks for a re-imported corpus file (0: at every check).
    breached_reload_seconds: int = 60
    # Also ask the Pwned Passwords range API. Off: no password-derived byte leaves the host.
    breached_range_api: bool = False
    # Range API base URL; the 5-hex-character prefix is appended.
    breached_range_url: str = "https://api.pwnedpasswords.com/range/"
    # Range API timeout: a password form must not hang on a third party.
    breached_range_timeout_ms: int = 2000
    # API unreachable: open = accept (offline corpus still applies; logged), closed = refuse.
    breached_range_fail: str = "open"

    # ------------------------------------------- protection (idp/protection/README.md)
    # Prefix of every counter key in Redis, so that several deployments or test runs can
    # share one Redis. Under env=testing the default becomes random per settings object.
    redis_prefix: str = "idp"
    # Rate limits per client address, flask-limiter syntax ("N per period;..."), POSTs only.
    # Sign-in: roomy for a carrier NAT full of shoppers, far below a replay bot's pace.
    rate_limit_login: str = "30 per minute;300 per hour"
    # One-time code entry (mfa.*): a 6-digit code must not be guessable from one address.
    rate_limit_mfa: str = "20 per minute;100 per hour"
    # Sign-up: each one sends a mail; a person creates an account or two.
    rate_limit_signup: str = "10 per minute;50 per hour"
    # Password reset request: sends a mail to someone else's inbox; keep it scarce.
    rate_limit_reset: str = "5 per minute;20 per hour"
    # Sign-in link request (the account-under-attack path): mails, like the reset.
    rate_limit_signin_link: str = "5 per minute;20 per hour"
    # Token endpoint: service callers sit behind few addresses and refresh often.
    rate_limit_token: str = "300 per minute"
    # Introspection: resource servers call it on every API request they receive.
    rate_limit_introspection: str = "1200 per minute"
    # Registering a second factor (TOTP, passkey): rare for a person, argon2/crypto for us.
    rate_limit_factor: str = "10 per minute;30 per hour"
    # Attack protection: consecutive failures for one account from one address before
    # that address (only) is refused for that account.
    ip_user_failure_limit: int = 10
    # ...and for how long after its last failure (a success there or a reset ends it sooner).
    ip_user_block_seconds: int = 60 * 60
    # Distinct accounts an address may fail against before all its sign-ins are throttled
    # (the stuffing signature)...
    ip_failure_capacity: int = 100
    # ...regaining one every this many seconds: 100 a day, slowly.
    ip_failure_regain_seconds: int = 864
    # NIST SP 800-63B-4 3.2.2: at most 100 consecutive failures per account; past that the
    # password alone is not tried from an unrecognised device (mailed link first).
    account_failure_limit: int = 100
    # The account's failure count is forgotten this long after its last failure.
    account_failure_window_seconds: int = 24 * 60 * 60
    # A recognised-device cookie lives this long (renewed at each sign-in on that device).
    device_cookie_days: int = 365
    # Lifetime of a mailed sign-in link.
    signin_link_seconds: int = 15 * 60
    # /metrics in Prometheus text format (process-local counters).
    metrics_enabled: bool = True

    # ------------------------------------------------ signing keys (idp/keys/, issue 7)
    # `idp keys rotate` publishes the new key this long before it signs, so every
    # relying service's JWKS cache (Cache-Control max-age 300 s) has seen it first.
    key_upcoming_seconds: int = 24 * 60 * 60
    # Automatic rotation: a new key is published when the active one is this many days
    # old (0: only `idp keys rotate`).
    key_rotation_days: int = 0

    # --------------------------------------- back-channel logout (issue 7, OIDC BCL 1.0)
    # Per relying party and logout: a slow RP must not hold up a sign-out or force-reset.
    backchannel_logout_timeout_ms: int = 2000

    def __post_init__(self) -> None:
        # Test apps share one Redis across the whole suite: a random prefix per settings
        # object keeps one test's counters out of the next (replace() keeps the prefix).
        if self.env == "testing" and self.redis_prefix == "idp":
            object.__setattr__(self, "redis_prefix", f"idp-test-{secrets.token_hex(4)}")

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
    def admin_audience(self) -> str:
        """RFC 8707 resource of the admin API (idp/admin): `aud` of its access tokens."""
        return self.issuer + "/admin"

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
        for name in RATE_LIMIT_FIELDS:
            try:
                if not parse_many(getattr(self, name)):
                    raise ValueError
            except ValueError:
                raise SettingsError(
                    f"IDP_{name.upper()} must be limits like '30 per minute;300 per hour', "
                    f"not {getattr(self, name)!r}"
                ) from None
        if not self.redis_prefix or any(c.isspace() for c in self.redis_prefix):
            raise SettingsError("IDP_REDIS_PREFIX must be a non-empty word without spaces")
        # The URLs below are checked here so that a typo stops start-up with one line
        # instead of a trace from deep inside SQLAlchemy, redis or smtplib. The values
        # may hold passwords, so the messages never repeat them.
        from sqlalchemy.engine import make_url  # here: `idp --help` need not load SQLAlchemy
        from sqlalchemy.exc import ArgumentError

        try:
            backend = make_url(self.database_url).get_backend_name()
        except ArgumentError:
            raise SettingsError(
                "IDP_DATABASE_URL is not a database URL (e.g. sqlite:///instance/idp.sqlite3"
                " or postgresql://user@host/db)"
            ) from None
        if backend not in ("sqlite", "postgresql"):
            raise SettingsError(f"IDP_DATABASE_URL must be a sqlite or postgresql URL, not {backend}")
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in ("redis", "rediss", "unix"):
            raise SettingsError("IDP_REDIS_URL must start with redis://, rediss:// or unix://")
        if self.smtp_url is not None:
            smtp = urlsplit(self.smtp_url)
            if smtp.scheme not in ("smtp", "smtps") or not smtp.hostname:
                raise SettingsError("IDP_SMTP_URL must look like smtp://host:port or smtps://host:port")
        if self.kek is not None:
            try:
                if len(base64.b64decode(self.kek, validate=True)) != 32:
                    raise ValueError
            except ValueError:
                raise SettingsError("IDP_KEK must be 32 bytes, base64-encoded") from None
        self._validate_breached()

    def _validate_breached(self) -> None:
        if self.breached_range_fail not in ("open", "closed"):
            raise SettingsError(f"IDP_BREACHED_RANGE_FAIL must be open or closed, not {self.breached_range_fail!r}")
        range_url = urlsplit(self.breached_range_url)
        if range_url.scheme not in ("http", "https") or not range_url.hostname:
            raise SettingsError("IDP_BREACHED_RANGE_URL must be an absolute http(s) URL")

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
        number("IDP_PASSWORD_RESET_SECONDS", "password_reset_seconds")
        number("IDP_FORCE_RESET_LINK_SECONDS", "force_reset_link_seconds")
        number("IDP_ARGON2_TIME_COST", "argon2_time_cost")
        number("IDP_ARGON2_MEMORY_KIB", "argon2_memory_kib", minimum=8)
        number("IDP_ARGON2_PARALLELISM", "argon2_parallelism")
        number("IDP_MAX_CONTENT_LENGTH", "max_content_length", minimum=1024)
        text("IDP_REDIS_PREFIX", "redis_prefix")
        for name in RATE_LIMIT_FIELDS:
            text(f"IDP_{name.upper()}", name)
        for name in PROTECTION_NUMBER_FIELDS:
            number(f"IDP_{name.upper()}", name)
        if raw := env.get("IDP_METRICS_ENABLED"):
            values["metrics_enabled"] = _bool("IDP_METRICS_ENABLED", raw)
        if raw := env.get("IDP_ACCESS_LOG"):
            values["access_log"] = _bool("IDP_ACCESS_LOG", raw)
        if raw := env.get("IDP_BREACHED_CORPUS"):
            values["breached_corpus"] = Path(raw)
        number("IDP_BREACHED_RELOAD_SECONDS", "breached_reload_seconds", minimum=0)
        if raw := env.get("IDP_BREACHED_RANGE_API"):
            values["breached_range_api"] = _bool("IDP_BREACHED_RANGE_API", raw)
        text("IDP_BREACHED_RANGE_URL", "breached_range_url")
        number("IDP_BREACHED_RANGE_TIMEOUT_MS", "breached_range_timeout_ms")
        number("IDP_KEY_UPCOMING_SECONDS", "key_upcoming_seconds", minimum=0)
        number("IDP_KEY_ROTATION_DAYS", "key_rotation_days", minimum=0)
        number("IDP_BACKCHANNEL_LOGOUT_TIMEOUT_MS", "backchannel_logout_timeout_ms", minimum=1)
        text("IDP_BREACHED_RANGE_FAIL", "breached_range_fail")
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings
