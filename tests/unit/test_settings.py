"""Settings: read once from IDP_* variables, validated so a bad value stops start-up."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from idp.settings import Settings, SettingsError

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

KEK_32_BYTES = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def test_defaults_are_the_embedded_mode():
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.issuer == "http://localhost:5000"
    assert settings.database_url.startswith("sqlite:///")
    assert settings.redis_url is None
    assert settings.mfa_policy == "required"
    assert settings.trusted_proxies == ()
    assert settings.smtp_url is None
    assert settings.is_local_http
    assert settings.access_log is True


def test_the_access_log_can_be_switched_off():
    assert Settings.from_env({"IDP_ACCESS_LOG": "false"}).access_log is False
    assert Settings.from_env({"IDP_ACCESS_LOG": "on"}).access_log is True


def test_every_contract_variable_is_read():
    settings = Settings.from_env(
        {
            "IDP_ENV": "production",
            "IDP_ISSUER": "https://login.example.com",
            "IDP_DATABASE_URL": "postgresql://idp@db.internal/idp",
            "IDP_REDIS_URL": "redis://cache.internal:6379/0",
            "IDP_KEYS_DIR": "/run/secrets/idp",
            "IDP_KEK": KEK_32_BYTES,
            "IDP_MFA_POLICY": "optional",
            "IDP_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7 2001:db8::/32",
            "IDP_SMTP_URL": "smtps://mailer:secret@smtp.example.com:465",
            "IDP_MAIL_OUTBOX": "/var/spool/idp",
            "IDP_SESSION_IDLE_SECONDS": "600",
            "IDP_SESSION_MAX_SECONDS": "3600",
        }
    )
    assert settings.env == "production"
    assert settings.issuer == "https://login.example.com"
    assert settings.issuer_host == "login.example.com"
    assert not settings.is_local_http
    assert settings.database_url == "postgresql://idp@db.internal/idp"
    assert settings.redis_url == "redis://cache.internal:6379/0"
    assert settings.keys_dir == Path("/run/secrets/idp")
    assert settings.mfa_policy == "optional"
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.0.2.7/32"),
        ipaddress.ip_network("2001:db8::/32"),
    )
    assert settings.mail_outbox == Path("/var/spool/idp")
    assert (settings.session_idle_seconds, settings.session_max_seconds) == (600, 3600)


def test_surrounding_whitespace_and_blank_values_fall_back_to_defaults():
    settings = Settings.from_env({"IDP_MFA_POLICY": "  optional \n", "IDP_ISSUER": "   "})
    assert settings.mfa_policy == "optional"
    assert settings.issuer == "http://localhost:5000"


def test_secrets_are_not_in_the_repr():
    settings = Settings.from_env({"IDP_KEK": KEK_32_BYTES, "IDP_SMTP_URL": "smtp://u:hunter2@mail.example.com"})
    assert KEK_32_BYTES not in repr(settings)
    assert "hunter2" not in repr(settings)


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(AttributeError):
        settings.issuer = "https://evil.example"  # type: ignore[misc]


def test_replace_validates_the_result():
    settings = Settings.from_env({})
    assert settings.replace(mfa_policy="optional").mfa_policy == "optional"
    with pytest.raises(SettingsError, match="IDP_MFA_POLICY"):
        settings.replace(mfa_policy="sometimes")


@pytest.mark.parametrize(
    ("environ", "names"),
    [
        ({"IDP_MFA_POLICY": "bogus"}, "IDP_MFA_POLICY"),
        ({"IDP_ENV": "staging"}, "IDP_ENV"),
        ({"IDP_ISSUER": "http://login.example.com"}, "https unless it is on localhost"),
        ({"IDP_ISSUER": "http://10.0.0.5:5000"}, "https unless it is on localhost"),
        ({"IDP_ISSUER": "login.example.com"}, "absolute http(s) URL"),
        ({"IDP_ISSUER": "ftp://login.example.com"}, "absolute http(s) URL"),
        ({"IDP_ISSUER": "https://login.example.com/"}, "trailing slash"),
        ({"IDP_ISSUER": "https://login.example.com?x=1"}, "no query"),
        ({"IDP_ISSUER": "https://login.example.com#top"}, "no query, fragment"),
        ({"IDP_ENV": "production"}, "IDP_ENV=production requires an https IDP_ISSUER"),
        ({"IDP_SESSION_IDLE_SECONDS": "abc"}, "IDP_SESSION_IDLE_SECONDS must be an integer"),
        ({"IDP_SESSION_IDLE_SECONDS": "0"}, "IDP_SESSION_IDLE_SECONDS must be at least 1"),
        ({"IDP_SESSION_IDLE_SECONDS": "7200", "IDP_SESSION_MAX_SECONDS": "3600"}, "cannot exceed"),
        ({"IDP_MAX_CONTENT_LENGTH": "10"}, "IDP_MAX_CONTENT_LENGTH must be at least 1024"),
        ({"IDP_TRUSTED_PROXIES": "10.0.0.0/8 not-an-ip"}, "IDP_TRUSTED_PROXIES: 'not-an-ip'"),
        ({"IDP_ARGON2_MEMORY_KIB": "8", "IDP_ARGON2_TIME_COST": "1"}, "argon2 parameters below the OWASP minimum"),
        ({"IDP_ARGON2_TIME_COST": "1"}, "argon2 parameters below the OWASP minimum"),
        ({"IDP_DATABASE_URL": "nonsense"}, "IDP_DATABASE_URL is not a database URL"),
        ({"IDP_DATABASE_URL": "mysql://idp@db/idp"}, "sqlite or postgresql"),
        ({"IDP_REDIS_URL": "http://cache:6379"}, "IDP_REDIS_URL"),
        ({"IDP_SMTP_URL": "mail.example.com:25"}, "IDP_SMTP_URL"),
        ({"IDP_KEK": "not base64!"}, "IDP_KEK must be 32 bytes"),
        ({"IDP_KEK": "c2hvcnQ="}, "IDP_KEK must be 32 bytes"),
        ({"IDP_ACCESS_LOG": "sometimes"}, "IDP_ACCESS_LOG must be true or false"),
    ],
)
def test_bad_values_are_refused_with_a_message_naming_the_variable(environ, names):
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(environ)
    message = str(caught.value)
    assert names in message
    assert "\n" not in message


def test_cheap_argon2_is_allowed_only_in_tests():
    cheap = {"IDP_ARGON2_TIME_COST": "1", "IDP_ARGON2_MEMORY_KIB": "8", "IDP_ARGON2_PARALLELISM": "1"}
    with pytest.raises(SettingsError):
        Settings.from_env(cheap)
    with pytest.raises(SettingsError):
        Settings.from_env({**cheap, "IDP_ENV": "production", "IDP_ISSUER": "https://login.example.com"})
    assert Settings.from_env({**cheap, "IDP_ENV": "testing"}).argon2_memory_kib == 8


def test_https_issuer_works_in_production():
    settings = Settings.from_env({"IDP_ENV": "production", "IDP_ISSUER": "https://login.example.com"})
    assert settings.env == "production"


@pytest.mark.parametrize("issuer", ["http://localhost:8080", "http://127.0.0.1:5000", "http://[::1]:5000"])
def test_plain_http_is_allowed_on_loopback_only(issuer):
    settings = Settings.from_env({"IDP_ISSUER": issuer})
    assert settings.is_local_http


def test_database_url_error_does_not_echo_a_password():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"IDP_DATABASE_URL": "mysql://idp:s3cret-pw@db/idp"})
    assert "s3cret-pw" not in str(caught.value)
