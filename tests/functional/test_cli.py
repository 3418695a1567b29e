"""The `idp` command as an operator runs it.

Every command answers --help; bad input exits non-zero with one line on stderr (never a
trace). Most cases run in this process through the real entry point (tests/command.py);
the installed console script, in a subprocess, answers every group's --help and the
cases marked "console script" below, so the entry point, its exit codes and its stderr
are checked as a shell sees them. Every `serve` case starts a process of its own: should
a check regress, the server would start there, not inside the test session.
"""

from __future__ import annotations

import json
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import click
from sqlalchemy import create_engine, inspect

from idp.cli import cli
from tests.command import IDP, Result, invoke, run_script, run_scripts
from tests.fixtures import sign_in

PASSWORD = "correct horse battery staple"


def base_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(
        IDP_ENV="testing",
        IDP_DATABASE_URL=database_url,
        IDP_KEYS_DIR=str(tmp_path / "keys"),
        IDP_MAIL_OUTBOX=str(tmp_path / "outbox"),
        IDP_ISSUER="http://localhost",
        # Cheap argon2: allowed only because IDP_ENV=testing.
        IDP_ARGON2_TIME_COST="1",
        IDP_ARGON2_MEMORY_KIB="8",
        IDP_ARGON2_PARALLELISM="1",
    )
    env.update(extra)
    return env


def run_all(calls: Sequence[tuple[Sequence[str], Mapping[str, str], str]], cwd: Path | None = None, *,
            script: Collection[int] = ()) -> list[Result]:
    """Each (args, env, stdin), started in ``cwd``; the results in order. In this process,
    except the calls at the indices in ``script`` and every ``serve``, which the console
    script runs (all at once)."""
    scripted = {i for i, (args, _, _) in enumerate(calls) if i in script or tuple(args[:1]) == ("serve",)}
    by_script = iter(run_scripts([calls[i] for i in sorted(scripted)], cwd=cwd))
    return [next(by_script) if i in scripted else invoke(args, env, stdin, cwd=cwd)
            for i, (args, env, stdin) in enumerate(calls)]


def run(args: Sequence[str], env: Mapping[str, str], cwd: Path | None = None, stdin: str = "") -> Result:
    return invoke(args, env, stdin, cwd=cwd)


def all_command_paths(group: click.Group = cli, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = [prefix]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths += all_command_paths(command, prefix + (name,))
        else:
            paths.append(prefix + (name,))
    return paths


def assert_one_line_failure(result: Result, *, mentions: str | None = None) -> None:
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"{result.args}: expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("idp: "), lines[0]
    if mentions:
        assert mentions in lines[0], lines[0]


def test_console_script_is_installed():
    assert IDP.exists() and os.access(IDP, os.X_OK)


def test_every_command_answers_help(tmp_path, database_url):
    paths = all_command_paths()
    # The contract's commands (DESIGN section 5) are among them.
    assert {("serve",), ("db", "upgrade"), ("users", "create")} <= set(paths)
    env = base_env(tmp_path, database_url)
    # The console script answers `idp --help` and each group's; the commands answer here.
    groups = [()] + [(name,) for name, command in sorted(cli.commands.items()) if isinstance(command, click.Group)]
    commands = [path for path in paths if path not in groups]
    results = run_scripts([(path + ("--help",), env, "") for path in groups], cwd=tmp_path)
    results += run_all([(path + ("--help",), env, "") for path in commands], tmp_path)
    assert len(results) == len(paths)
    for result in results:
        assert result.returncode == 0, (result.args, result.stderr)
        assert result.stdout.startswith("Usage: idp"), result.args
        assert result.stderr == "", (result.args, result.stderr)
    # -h works as well as --help.
    assert run(("users", "create", "-h"), env, tmp_path).stdout.startswith("Usage: idp users create")


def test_bad_arguments_exit_non_zero_with_one_line(tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    cases = [
        (("bogus",), "No such command"),
        (("serve", "--port", "0"), "--port"),
        (("serve", "--port", "not-a-port"), "--port"),
        (("serve", "--workers", "4"), "IDP_REDIS_URL"),
        (("db", "upgrade", "extra"), "unexpected extra argument"),
        (("users", "create"), "Missing option '--email'"),
        (("users", "create", "--email"), "--email"),
        (("users", "create", "--email", "a@example.com", "--nope"), "No such option"),
        (("users", "create", "--email", "not-an-email"), "valid email"),
        (("users", "create", "--email", "a" * 10_000 + "@example.com"), "too long"),
        (("users", "create", "--email", "a\x1b@example.com"), "not allowed"),
        (("users", "create", "--email", "nopw@example.com", "--password-stdin"), "no password"),
        (("clients", "create", "--redirect-uri", "https://rp.example/cb"), "Missing option '--name'"),
    ]
    # Console script: the two whose exit codes are checked below, as a shell sees them,
    # and the clients group's usage error.
    results = run_all([(args, env, "") for args, _ in cases], tmp_path, script={0, 8, 12})
    for result, (_, mentions) in zip(results, cases, strict=True):
        assert_one_line_failure(result, mentions=mentions)
    # Usage errors exit 2 (as click and most Unix tools do); other failures exit 1.
    assert results[0].returncode == 2 and results[8].returncode == 1


BAD_CONFIGURATION = [
    ("IDP_MFA_POLICY", "bogus", "IDP_MFA_POLICY"),
    ("IDP_ENV", "staging", "IDP_ENV"),
    ("IDP_ISSUER", "http://login.example.com", "IDP_ISSUER"),
    ("IDP_SESSION_IDLE_SECONDS", "soon", "IDP_SESSION_IDLE_SECONDS"),
    ("IDP_DATABASE_URL", "nonsense", "IDP_DATABASE_URL"),
    ("IDP_DATABASE_URL", "mysql://u:secret-pw@db/idp", "IDP_DATABASE_URL"),
    ("IDP_KEK", "not-a-key", "IDP_KEK"),
    ("IDP_TRUSTED_PROXIES", "10.0.0.0/8 nope", "IDP_TRUSTED_PROXIES"),
]


def test_bad_configuration_is_one_line_and_non_zero(tmp_path, database_url):
    calls = [(("db", "upgrade"), base_env(tmp_path, database_url, **{variable: value}), "")
             for variable, value, _ in BAD_CONFIGURATION]
    # The same check guards the commands that open the database and the server.
    mfa = base_env(tmp_path, database_url, IDP_MFA_POLICY="bogus")
    calls += [(("users", "create", "--email", "x@example.com"), mfa, ""), (("serve",), mfa, "")]
    mentions = [m for _, _, m in BAD_CONFIGURATION] + ["IDP_MFA_POLICY", "IDP_MFA_POLICY"]
    for result, expected in zip(run_all(calls, tmp_path), mentions, strict=True):
        assert_one_line_failure(result, mentions=expected)
        assert "secret-pw" not in result.stderr


def test_cheap_argon2_outside_testing_is_refused(tmp_path, database_url):
    env = base_env(tmp_path, database_url, IDP_ENV="development")
    assert_one_line_failure(run_script(("db", "upgrade"), env, cwd=tmp_path), mentions="argon2")  # console script


def test_unreachable_or_unmigrated_database_is_one_line(tmp_path, database_url):
    unreachable = base_env(tmp_path, "postgresql://nobody@127.0.0.1:1/idp")
    empty = base_env(tmp_path, f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}")
    results = run_all(
        [
            (("users", "create", "--email", "x@example.com"), unreachable, ""),
            (("db", "upgrade"), unreachable, ""),
            (("users", "create", "--email", "x@example.com"), empty, ""),
        ],
        tmp_path,
    )
    assert_one_line_failure(results[0], mentions="database")
    assert_one_line_failure(results[1], mentions="cannot reach the database")
    assert_one_line_failure(results[2], mentions="idp db upgrade")


def test_world_readable_key_file_is_refused(tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    keys = tmp_path / "keys"
    keys.mkdir()
    (keys / "kek").write_text("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n")
    (keys / "kek").chmod(0o644)
    results = run_all([(("users", "create", "--email", "x@example.com"), env, ""),
                       (("serve", "--port", "1"), env, "")], tmp_path)
    for result in results:
        assert_one_line_failure(result, mentions="chmod 600")


def test_db_upgrade_creates_a_fresh_sqlite_database(tmp_path):
    path = tmp_path / "new" / "folder" / "idp.sqlite3"
    env = base_env(tmp_path, f"sqlite:///{path}")
    first = run_script(("db", "upgrade"), env, cwd=tmp_path)  # console script
    assert first.returncode == 0, first.stderr
    assert path.exists()
    engine = create_engine(f"sqlite:///{path}")
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"users", "sso_sessions", "email_tokens", "audit_events", "alembic_version"} <= tables
    # Running it again is harmless.
    again = run(("db", "upgrade"), env, tmp_path)
    assert again.returncode == 0 and "up to date" in again.stdout


def test_users_create_then_sign_in_works(app, tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    # Console script, both times.
    created = run_script(("users", "create", "--email", "Operator@Example.com", "--password-stdin", "--verified"),
                         env, PASSWORD + "\n", cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    printed = json.loads(created.stdout)
    assert printed["email"] == "operator@example.com" and printed["verified"] is True
    assert PASSWORD not in created.stdout + created.stderr

    client = app.test_client()
    response = sign_in(client, "operator@example.com", PASSWORD)
    assert response.status_code == 302 and not response.headers["Location"].startswith("/login?")
    registry = app.extensions["idp"]
    with registry.sessionmaker() as db:
        record = registry.services(db).sessions.resolve(client.get_cookie("idp_sso").value)
        assert record is not None and record.user_id == printed["id"]
    assert sign_in(app.test_client(), "operator@example.com", "wrong password guess").status_code == 401

    # The same address again, in another spelling: refused, one line.
    again = run_script(("users", "create", "--email", "OPERATOR@example.com"), env, cwd=tmp_path)
    assert_one_line_failure(again, mentions="already exists")


def test_users_create_unverified_mails_a_verification_link(app, tmp_path, database_url, outbox):
    env = base_env(tmp_path, database_url)
    created = run(("users", "create", "--email", "new@example.com", "--password-stdin"), env, tmp_path,
                  stdin=PASSWORD + "\n")
    assert created.returncode == 0, created.stderr
    assert json.loads(created.stdout)["verified"] is False
    mails = list((tmp_path / "outbox").glob("*.eml"))
    assert len(mails) == 1 and b"/verify-email?token=" in mails[0].read_bytes()
    assert sign_in(app.test_client(), "new@example.com", PASSWORD).status_code == 403


def test_users_create_applies_the_password_rules(tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    short = run(("users", "create", "--email", "short@example.com", "--password-stdin"), env, tmp_path,
                stdin="short\n")
    assert_one_line_failure(short, mentions="at least")
