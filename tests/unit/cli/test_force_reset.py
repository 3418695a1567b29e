"""``idp users force-reset`` as an operator runs it, configured by IDP_* variables,
against the test database: through the command's entry point in this process
(tests/command.py), and in a process of its own where a signal interrupts it.

``--all`` is interrupted three ways (``--max-batches``, SIGTERM, SIGKILL) and re-run:
nobody is mailed twice and everybody ends up done (issue 7, Done 4).
"""

from __future__ import annotations

import collections
import datetime as dt
import email.parser
import email.policy
import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from idp.db import random_id, utcnow
from idp.models import AuditEvent, ForceResetRun, SsoSession, User
from tests.command import Result, invoke
from tests.fixtures import cli_environment

IDP = [sys.executable, "-c", "from idp.cli import main; main()"]  # for the runs a signal stops
PASSWORD = "correct horse battery staple"


@pytest.fixture
def env(app, settings) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return cli_environment(settings)


def idp(env: dict[str, str], *args: str) -> Result:
    return invoke(args, env)


def generate_users(app, count: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Bulk-insert accounts (one argon2 hash shared by all): every 10th unverified, every
    25th disabled. Returns how many of each kind."""
    registry = app.extensions["idp"]
    password_hash = registry.hasher.hash(PASSWORD)
    now = utcnow() - dt.timedelta(days=1)
    rows = []
    kinds: collections.Counter[str] = collections.Counter()
    for i in range(count):
        verified = i % 10 != 0
        disabled = i % 25 == 1
        kinds["mailable" if verified and not disabled else "not_mailable"] += 1
        rows.append({
            "id": random_id(), "email": f"user{i:06d}@example.com", "password_hash": password_hash,
            "password_changed_at": now, "must_change_password": False, "created_at": now,
            "email_verified_at": now if verified else None, "disabled_at": now if disabled else None,
        })
    with registry.engine.begin() as conn:
        for start in range(0, len(rows), 1000):
            conn.execute(insert(User.__table__), rows[start:start + 1000])
    return dict(kinds)


def recipients(outbox: Path) -> collections.Counter[str]:
    # The headers are all this needs: parsing thousands of whole messages (bodies and
    # parts) took longer than the runs under test.
    parser = email.parser.BytesHeaderParser(policy=email.policy.default)
    counts: collections.Counter[str] = collections.Counter()
    for path in outbox.glob("*.eml"):
        message = parser.parsebytes(path.read_bytes())
        if "password has been reset" in message["Subject"]:
            counts[message["To"]] += 1
    return counts


def db_counts(app) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """(accounts still with a usable password, accounts locked out)"""
    with app.extensions["idp"].sessionmaker() as db:
        usable = db.scalar(select(func.count()).where(User.password_hash.is_not(None)))
        locked = db.scalar(select(func.count()).where(User.password_hash.is_(None), User.must_change_password))
        return usable, locked


# ------------------------------------------------------------------ one account
def test_force_reset_one_account(app, env, make_user, outbox):
    make_user("alice@example.com")
    make_user("bob@example.com")
    result = idp(env, "users", "force-reset", "--email", "Alice@Example.com")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"email": "Alice@Example.com", "mailed": True}
    assert [m["To"] for m in outbox.messages() if "reset" in m["Subject"]] == ["alice@example.com"]
    with app.extensions["idp"].sessionmaker() as db:
        alice = db.scalar(select(User).where(User.email == "alice@example.com"))
        bob = db.scalar(select(User).where(User.email == "bob@example.com"))
        assert alice.password_hash is None and alice.must_change_password
        assert bob.password_hash is not None
        [event] = db.scalars(select(AuditEvent).where(AuditEvent.event == "password.force_reset"))
        assert event.user_id == alice.id and event.details["mailed"] is True


@pytest.mark.parametrize("args, message", [
    (["--email", "nobody@example.com"], "no account for nobody@example.com"),
    (["--email", "not an address"], "--email"),
    (["--email", "x\u202e@example.com"], "--email"),
    (["--email", "a@example.com", "--all"], "exactly one"),
    ([], "exactly one"),
    (["--all", "--batch-size", "0"], "batch-size"),
])
def test_bad_input_is_one_line_and_non_zero(env, args, message):
    result = idp(env, "users", "force-reset", *args)
    assert result.returncode != 0
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------------ all accounts
def test_all_in_batches_mails_every_verified_active_account_once(app, env, settings, make_user):
    kinds = generate_users(app, 450)
    result = idp(env, "users", "force-reset", "--all", "--batch-size", "100")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["finished"] and report["accounts"] == 450 and report["mailed"] == kinds["mailable"]
    assert [line.split(":")[1].strip() for line in result.stderr.splitlines()] == [f"batch {i}" for i in range(1, 6)]
    counts = recipients(settings.mail_outbox)
    assert len(counts) == kinds["mailable"] and set(counts.values()) == {1}
    assert db_counts(app) == (0, 450)
    with app.extensions["idp"].sessionmaker() as db:
        assert db.scalar(select(func.count()).where(AuditEvent.event == "password.force_reset")) == 450

    # Idempotent: nobody has set a password since, so a new run has nothing to do.
    again = idp(env, "users", "force-reset", "--all")
    assert again.returncode == 0 and json.loads(again.stdout)["accounts"] == 0
    assert recipients(settings.mail_outbox) == counts


def test_all_ends_sessions_and_skips_accounts_created_after_the_run_started(app, env, settings, make_user):
    from tests.fixtures import start_session

    make_user("early@example.com")
    client = app.test_client()
    start_session(app, client, "early@example.com")
    generate_users(app, 120)
    first = idp(env, "users", "force-reset", "--all", "--batch-size", "50", "--max-batches", "1")
    assert first.returncode == 0 and "--max-batches" in first.stderr
    make_user("late@example.com")  # signed up after the run began: a password set after the incident
    second = idp(env, "users", "force-reset", "--all", "--batch-size", "50")
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["resumed"] is True
    with app.extensions["idp"].sessionmaker() as db:
        late = db.scalar(select(User).where(User.email == "late@example.com"))
        assert late.password_hash is not None
        assert db.scalar(select(func.count()).where(SsoSession.ended_at.is_(None))) == 0
        [run] = db.scalars(select(ForceResetRun))
        assert run.finished_at is not None and run.users_done == 121
    assert client.get("/account").status_code == 302


def test_max_batches_then_resume_mails_nobody_twice(app, env, settings):
    kinds = generate_users(app, 600)
    first = idp(env, "users", "force-reset", "--all", "--batch-size", "100", "--max-batches", "2")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["accounts"] == 200 and not json.loads(first.stdout)["finished"]
    assert db_counts(app) == (400, 200)
    second = idp(env, "users", "force-reset", "--all", "--batch-size", "100")
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["resumed"] and report["finished"] and report["accounts"] == 600
    counts = recipients(settings.mail_outbox)
    assert len(counts) == kinds["mailable"] and set(counts.values()) == {1}
    assert db_counts(app) == (0, 600)


def _start_and_signal(env: dict[str, str], sig: int, *, after_batches: int) -> tuple[int, str]:
    process = subprocess.Popen([*IDP, "users", "force-reset", "--all", "--batch-size", "50"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stderr is not None
    seen = []
    for raw in process.stderr:
        seen.append(raw.decode())
        if raw.startswith(b"force-reset: batch") and len(seen) >= after_batches:
            process.send_signal(sig)
            break
    _out, err = process.communicate(timeout=120)
    return process.returncode, "".join(seen) + err.decode()


def test_sigterm_stops_between_two_mails_and_the_rerun_mails_exactly_the_rest(app, env, settings):
    kinds = generate_users(app, 2000)
    code, err = _start_and_signal(env, signal.SIGTERM, after_batches=2)
    assert code == 1 and "run the same command again to resume" in err, err
    usable, locked = db_counts(app)
    assert 0 < locked < 2000 and usable + locked == 2000  # stopped midway
    partial = recipients(settings.mail_outbox)
    assert set(partial.values()) == {1}

    again = idp(env, "users", "force-reset", "--all", "--batch-size", "50")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["resumed"] and report["finished"] and report["unconfirmed"] == 0
    counts = recipients(settings.mail_outbox)
    assert len(counts) == kinds["mailable"] and set(counts.values()) == {1}
    assert db_counts(app) == (0, 2000)


def test_sigkill_mid_run_never_mails_twice_and_reports_what_it_cannot_confirm(app, env, settings):
    kinds = generate_users(app, 2000)
    code, _err = _start_and_signal(env, signal.SIGKILL, after_batches=2)
    assert code == -signal.SIGKILL
    again = idp(env, "users", "force-reset", "--all", "--batch-size", "50")
    assert again.returncode == 0, again.stderr
    report = json.loads(again.stdout)
    assert report["finished"] and report["accounts"] == 2000
    counts = recipients(settings.mail_outbox)
    assert set(counts.values()) == {1}  # nobody twice
    # A kill while mailing leaves at most one batch whose mail cannot be confirmed;
    # they are named in the audit log, everyone else was mailed.
    assert report["unconfirmed"] <= 50
    assert len(counts) + report["unconfirmed"] >= kinds["mailable"]
    with app.extensions["idp"].sessionmaker() as db:
        named = db.scalar(select(func.count()).where(AuditEvent.event == "password.force_reset_mail_unconfirmed"))
    assert named == report["unconfirmed"]
    if report["unconfirmed"]:
        assert "may not have received their mail" in again.stderr
    assert db_counts(app) == (0, 2000)


def test_a_mail_server_outage_stops_the_run_cleanly_and_the_rerun_mails_the_rest(app, env, settings):
    import socket

    kinds = generate_users(app, 300)
    with socket.socket() as closed:  # a port nobody listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    down = idp({**env, "IDP_SMTP_URL": f"smtp://127.0.0.1:{port}"}, "users", "force-reset", "--all",
               "--batch-size", "100")
    assert down.returncode == 1
    assert "mail could not be sent" in down.stderr and "run the same command again" in down.stderr
    assert "Traceback" not in down.stderr
    assert db_counts(app) == (200, 100)  # the first batch is done, its mail is not
    up = idp(env, "users", "force-reset", "--all", "--batch-size", "100")
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["unconfirmed"] == 0
    counts = recipients(settings.mail_outbox)
    assert len(counts) == kinds["mailable"] and set(counts.values()) == {1}
    assert db_counts(app) == (0, 300)
