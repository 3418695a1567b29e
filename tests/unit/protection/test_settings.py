"""Protection settings: IDP_* names, validation, the per-test Redis prefix."""

from __future__ import annotations

import pytest

from idp.settings import RATE_LIMIT_FIELDS, Settings, SettingsError

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def test_rate_limits_and_thresholds_are_read_from_the_environment():
    s = Settings.from_env({"IDP_RATE_LIMIT_LOGIN": "5 per minute;50 per hour", "IDP_IP_USER_FAILURE_LIMIT": "4",
                           "IDP_ACCOUNT_FAILURE_LIMIT": "50", "IDP_REDIS_PREFIX": "shop-idp"})
    assert (s.rate_limit_login, s.ip_user_failure_limit, s.account_failure_limit) == ("5 per minute;50 per hour", 4, 50)
    assert s.redis_prefix == "shop-idp"


@pytest.mark.parametrize("field", RATE_LIMIT_FIELDS)
def test_a_rate_limit_that_does_not_parse_stops_start_up(field):
    with pytest.raises(SettingsError, match=f"IDP_{field.upper()}"):
        Settings.from_env({f"IDP_{field.upper()}": "plenty"})


def test_thresholds_must_be_positive():
    with pytest.raises(SettingsError, match="IDP_IP_FAILURE_CAPACITY"):
        Settings.from_env({"IDP_IP_FAILURE_CAPACITY": "0"})


def test_defaults_follow_the_issue():
    s = Settings()
    assert s.ip_user_failure_limit == 10 and s.account_failure_limit == 100
    assert s.ip_failure_capacity == 100 and s.ip_failure_capacity * s.ip_failure_regain_seconds == 24 * 60 * 60
    assert s.redis_prefix == "idp"


def test_test_settings_get_their_own_redis_prefix_which_replace_keeps():
    a = Settings(env="testing", argon2_time_cost=1, argon2_memory_kib=8)
    b = Settings(env="testing", argon2_time_cost=1, argon2_memory_kib=8)
    assert a.redis_prefix != b.redis_prefix and a.redis_prefix.startswith("idp-test-")
    assert a.replace(issuer="http://localhost:8080").redis_prefix == a.redis_prefix
