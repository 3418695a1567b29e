"""``idp keys list | rotate | retire`` as an operator runs them, configured by IDP_*
variables, against the test database (issue 7): through the command's entry point in
this process (tests/command.py), and the bad-input cases through the installed console
script in a subprocess, as a shell sees them."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from sqlalchemy import select

from idp.models import AuditEvent, SigningKey
from idp.settings import Settings
from tests.command import Result, invoke, run_scripts
from tests.fixtures import cli_environment


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    return cli_environment(settings, **extra)


def idp(env: dict[str, str], *args: str) -> Result:
    return invoke(args, env)


def keys_json(env: dict[str, str]) -> dict[str, dict[str, str | None]]:
    listed = idp(env, "keys", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    return {row["kid"]: row for row in rows}


def assert_one_line_failure(result: Result, mentions: str) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("idp: "), result.stderr
    assert mentions in lines[0], lines[0]


@pytest.fixture
def env(app, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return cli_env(settings)


def test_list_shows_state_role_and_dates(env):
    keys = keys_json(env)
    roles = sorted((k["alg"], k["state"], k["role"]) for k in keys.values())
    assert roles == [("ES256", "active", "signing"), ("ES256", "next", "standby"), ("EdDSA", "active", "signing")]
    for row in keys.values():
        assert set(row) == {"kid", "alg", "state", "role", "created_at", "activates_at", "activated_at",
                            "retire_at", "retired_at"}
        assert dt.datetime.fromisoformat(row["created_at"]).tzinfo is not None
    table = idp(env, "keys", "list")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["KID", "ALG", "STATE", "ROLE", "CREATED", "ACTIVATES", "AT", "ACTIVATED", "RETIRE",
                                "AT", "RETIRED"]
    assert len(lines) == 4 and all(any(kid in line for line in lines) for kid in keys)


def test_rotate_schedules_a_new_key_and_the_old_one_retires_after_its_tokens(app, env):
    before = keys_json(env)
    old = next(k for k, v in before.items() if v["alg"] == "EdDSA")
    rotated = idp(env, "keys", "rotate", "--alg", "EdDSA")
    assert rotated.returncode == 0, rotated.stderr
    new = rotated.stdout.split()[0]
    assert new not in before and "signs EdDSA tokens from 20" in rotated.stdout
    keys = keys_json(env)
    assert keys[new]["state"] == "next" and keys[new]["role"] == "upcoming"
    activates = dt.datetime.fromisoformat(keys[new]["activates_at"])
    created = dt.datetime.fromisoformat(keys[new]["created_at"])
    assert activates - created == dt.timedelta(seconds=24 * 3600)  # the default IDP_KEY_UPCOMING_SECONDS
    # The old key keeps signing until then, and stays published an hour (the longest
    # access-token lifetime) plus leeway after it.
    assert keys[old]["role"] == "signing"
    retire_at = dt.datetime.fromisoformat(keys[old]["retire_at"])
    assert dt.timedelta(seconds=3600) < retire_at - activates <= dt.timedelta(seconds=3600 + 120)
    # Rotating again now would cut the waiting time short or stack keys: refused.
    again = idp(env, "keys", "rotate", "--alg", "EdDSA")
    assert_one_line_failure(again, mentions=f"a rotation is already pending: {new} signs from")
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.event == "key.rotated")).all()
    assert [(e.details["kid"], e.details["reason"], e.user_agent) for e in events] == [(new, "operator", "idp-cli")]


def test_rotate_with_a_standby_published_long_enough_signs_at_once(settings, app):
    env = cli_env(settings, IDP_KEY_UPCOMING_SECONDS="0")
    standby = next(k for k, v in keys_json(env).items() if v["role"] == "standby")
    rotated = idp(env, "keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == f"{standby} is published and signs ES256 tokens from now on"
    keys = keys_json(env)
    assert keys[standby]["role"] == "signing"
    assert sorted(v["role"] for v in keys.values() if v["alg"] == "ES256") == ["signing", "standby", "verifying"]


def test_retire_is_immediate_and_audited(app, env):
    standby = next(k for k, v in keys_json(env).items() if v["role"] == "standby")
    retired = idp(env, "keys", "retire", standby)
    assert retired.returncode == 0 and retired.stdout.strip() == f"{standby} is retired"
    row = keys_json(env)[standby]
    assert row["state"] == "retired" and row["retired_at"] is not None
    assert idp(env, "keys", "retire", standby).returncode == 0, "retiring twice is harmless"
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        events = db.scalars(select(AuditEvent).where(AuditEvent.event == "key.retired")).all()
        assert [(e.details["kid"], e.details["reason"]) for e in events] == [(standby, "operator")]
        assert db.get(SigningKey, standby).state == "retired"


BAD_INPUT = [
    (("keys", "retire", "es256-no-such-key"), "no signing key 'es256-no-such-key'"),
    (("keys", "retire", "x" * 10_000), "no signing key with that id"),
    (("keys", "retire", "\x1b[31mred"), "no signing key '\\x1b[31mred'"),
    (("keys", "retire"), "Missing argument 'KID'"),
    (("keys", "rotate", "--alg", "HS256"), "'HS256' is not one of 'ES256', 'EdDSA'"),
    (("keys", "list", "--bogus"), "No such option"),
]


def test_bad_input_is_one_line_and_non_zero(env):
    # The console script, as a shell sees it (started together: run_scripts).
    results = run_scripts([(args, env, "") for args, _ in BAD_INPUT], timeout=120)
    for result, (_, mentions) in zip(results, BAD_INPUT, strict=True):
        assert_one_line_failure(result, mentions)
        assert len(result.stderr) < 400


@pytest.mark.parametrize("alg", ["ES256", "EdDSA"])
def test_the_only_active_key_of_an_algorithm_cannot_be_retired(env, alg):
    only = next(k for k, v in keys_json(env).items() if v["alg"] == alg and v["state"] == "active")
    result = idp(env, "keys", "retire", only)
    assert_one_line_failure(result, mentions=f"{only} is the only active {alg} key; rotate first")
    assert keys_json(env)[only]["state"] == "active"
