"""``idp users show|disable|enable|unlock|end-sessions|admin`` as an operator runs them:
through the command's entry point, in this process (tests/command.py; test_cli.py starts
the console script for the users group), against the database the app uses, with the
effects checked where a person meets them (/login, the account page)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import BACKEND
from tests.fixtures import sign_in, start_session
from tests.functional.test_cli import assert_one_line_failure, base_env, run, run_all

EMAIL = "user@example.com"
PASSWORD = "correct horse battery staple"
GENERIC = "That email and password do not match an account."
COMMANDS = ("show", "disable", "enable", "unlock", "end-sessions", "admin")


@pytest.fixture
def env(tmp_path, database_url, app):  # type: ignore[no-untyped-def]
    """The CLI's environment: the app fixture's database, keys and outbox."""
    return base_env(tmp_path, database_url)


def test_each_command_answers_help_and_refuses_bad_input_in_one_line(env, tmp_path, make_user):
    make_user(EMAIL)
    helps = run_all([(("users", name, "--help"), env, "") for name in COMMANDS], tmp_path)
    for result in helps:
        assert result.returncode == 0 and result.stdout.startswith("Usage: idp users"), result
    cases = [
        (("users", "show"), "Missing option '--email'"),
        (("users", "show", "--email", "nobody@example.com"), "no account for nobody@example.com"),
        (("users", "disable", "--email", "not-an-address"), "valid email"),
        (("users", "enable", "--email", "a\x1b@example.com"), "not allowed"),
        (("users", "end-sessions", "--email", "nobody@example.com"), "no account"),
        (("users", "admin", "--email", EMAIL), "exactly one of --grant or --revoke"),
        (("users", "admin", "--email", EMAIL, "--grant", "--revoke"), "exactly one of --grant or --revoke"),
        (("users", "disable", "--email", EMAIL, "extra"), "unexpected extra argument"),
    ]
    results = run_all([(args, env, "") for args, _ in cases], tmp_path)
    for result, (_, mentions) in zip(results, cases, strict=True):
        assert_one_line_failure(result, mentions=mentions)


def test_show_prints_the_account_without_secrets(env, tmp_path, app, make_user):
    user = make_user(EMAIL)
    start_session(app, app.test_client(), EMAIL, amr=("hwk", "user"))
    as_json, as_text = run_all([(("users", "show", "--email", "USER@example.com", "--json"), env, ""),
                                (("users", "show", "--email", EMAIL), env, "")], tmp_path)
    assert as_json.returncode == 0, as_json.stderr
    info = json.loads(as_json.stdout)
    assert info["id"] == user.id and info["email"] == EMAIL and info["disabled"] is False
    assert info["is_admin"] is False and info["active_sessions"] == 1 and info["password_set"] is True
    assert info["factors"] == {"totp": 0, "passkeys": 0, "recovery_codes_left": 0}
    assert user.password_hash not in as_json.stdout and "argon2" not in as_json.stdout
    assert as_text.returncode == 0 and f"id:               {user.id}" in as_text.stdout
    assert "state:            active" in as_text.stdout and "argon2" not in as_text.stdout


def test_disable_refuses_sign_in_and_ends_the_session_then_enable_restores_sign_in(env, tmp_path, app, make_user):
    make_user(EMAIL)
    browser = app.test_client()
    start_session(app, browser, EMAIL, amr=("hwk", "user"))
    assert browser.get("/account").status_code == 200

    disabled = run(("users", "disable", "--email", EMAIL), env, tmp_path)
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout.strip() == f"{EMAIL}: disabled (1 session(s) ended, 0 token(s) revoked)"
    assert browser.get("/account").status_code == 302
    refused = sign_in(app.test_client(), EMAIL, PASSWORD)
    assert refused.status_code == 401 and GENERIC in refused.get_data(as_text=True)
    again = run(("users", "disable", "--email", EMAIL), env, tmp_path)
    assert again.stdout.strip() == f"{EMAIL}: disabled (no change)"

    enabled = run(("users", "enable", "--email", EMAIL), env, tmp_path)
    assert enabled.returncode == 0 and enabled.stdout.strip() == f"{EMAIL}: enabled"
    assert sign_in(app.test_client(), EMAIL, PASSWORD).status_code == 302


def test_end_sessions_signs_out_everywhere(env, tmp_path, app, make_user):
    make_user(EMAIL)
    browsers = [app.test_client(), app.test_client()]
    for browser in browsers:
        start_session(app, browser, EMAIL, amr=("hwk", "user"))
    result = run(("users", "end-sessions", "--email", EMAIL), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 session(s) ended" in result.stdout
    assert all(b.get("/account").status_code == 302 for b in browsers)


def test_admin_grant_and_revoke(env, tmp_path, app, make_user):
    user = make_user(EMAIL)
    granted = run(("users", "admin", "--email", EMAIL, "--grant"), env, tmp_path)
    assert granted.returncode == 0 and granted.stdout.strip() == f"{EMAIL}: is an administrator"
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        assert registry.services(db).accounts.get(user.id).is_admin is True
    revoked = run(("users", "admin", "--email", EMAIL, "--revoke"), env, tmp_path)
    assert revoked.returncode == 0 and revoked.stdout.strip() == f"{EMAIL}: is no longer an administrator"
    with registry.sessionmaker() as db:
        assert registry.services(db).accounts.get(user.id).is_admin is False


@pytest.mark.skipif(BACKEND != "sqlite", reason="the embedded mode: counters in process memory")
def test_unlock_without_redis_says_where_to_unlock_instead(env, tmp_path, make_user):
    make_user(EMAIL)
    result = run(("users", "unlock", "--email", EMAIL), env, tmp_path)
    assert_one_line_failure(result, mentions="admin API")


@pytest.mark.skipif(BACKEND != "postgresql", reason="the scale-out mode: counters in Redis")
@pytest.mark.parametrize("settings", [{"ip_user_failure_limit": 3}], indirect=True)
def test_unlock_with_redis_clears_an_account_lock(tmp_path, database_url, redis_url, settings, app, make_user):
    make_user(EMAIL)
    browser = app.test_client()
    for _ in range(3):
        assert sign_in(browser, EMAIL, "wrong password guess").status_code == 401
    assert sign_in(browser, EMAIL, PASSWORD).status_code == 401  # locked for this address
    env = base_env(tmp_path, database_url, IDP_REDIS_URL=redis_url, IDP_REDIS_PREFIX=settings.redis_prefix)
    result = run(("users", "unlock", "--email", EMAIL), env, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{EMAIL}: unlocked"
    assert sign_in(browser, EMAIL, PASSWORD).status_code == 302
