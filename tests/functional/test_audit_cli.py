"""`idp audit verify | head | export` as an operator runs them, against a log tampered
with directly in the database (issue 7, done-when 3). Through the command's entry point
in this process (tests/command.py), except where marked: the console script, in a
subprocess, for the exit status a script or a monitor sees."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text

from idp.audit.chain import GENESIS
from idp.db import make_engine
from tests.command import run_script
from tests.fixtures import sign_in
from tests.functional.test_cli import assert_one_line_failure, base_env, run, run_all

PASSWORD = "correct horse battery staple"


@pytest.fixture
def logged(app, make_user):
    """A real log: an operator-created account, a good and a bad sign-in, a sign-out."""
    make_user("audit@example.com", PASSWORD)
    client = app.test_client()
    sign_in(client, "audit@example.com", PASSWORD)
    sign_in(app.test_client(), "audit@example.com", "wrong guess at it")
    sign_in(app.test_client(), "nobody@example.com", "wrong guess at it")
    return app


def tamper(database_url: str, *statements: str) -> None:
    engine = make_engine(database_url)
    try:
        with engine.begin() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


def count(database_url: str) -> int:
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
    finally:
        engine.dispose()


def test_intact_log_verifies_with_a_one_line_summary_and_the_head(logged, tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    n = count(database_url)
    assert n >= 4
    verify, head = run_all([(("audit", "verify"), env, ""), (("audit", "head"), env, "")], tmp_path)
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith(f"audit log intact: {n} records, seq 1..{n}; head {n}:")
    assert len(verify.stdout.strip().splitlines()) == 1 and verify.stderr == ""
    assert head.stdout.strip() == verify.stdout.strip().rsplit(" ", 1)[1]
    anchored = run(("audit", "verify", "--anchor", head.stdout.strip(), "--from", "2"), env, tmp_path)
    assert anchored.returncode == 0 and f"{n - 1} records, seq 2..{n}" in anchored.stdout


def test_edited_record_is_reported_with_its_seq(logged, tmp_path, database_url):
    tamper(database_url, "UPDATE audit_events SET event = 'signin.succeeded' WHERE seq = 3")
    result = run_script(("audit", "verify"), base_env(tmp_path, database_url), cwd=tmp_path)  # console script
    assert result.returncode == 1
    assert result.stdout.startswith("audit log TAMPERED at seq 3: edited: hash mismatch")
    assert len(result.stdout.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_deleted_record_is_reported_with_its_seq(logged, tmp_path, database_url):
    tamper(database_url, "DELETE FROM audit_events WHERE seq = 2")
    result = run(("audit", "verify"), base_env(tmp_path, database_url), tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("audit log TAMPERED at seq 2: deleted: seq 2 missing")


def test_reordered_records_are_reported_with_their_seq(logged, tmp_path, database_url):
    tamper(database_url, "UPDATE audit_events SET seq = -1 WHERE seq = 2",
           "UPDATE audit_events SET seq = 2 WHERE seq = 3", "UPDATE audit_events SET seq = 3 WHERE seq = -1")
    result = run(("audit", "verify"), base_env(tmp_path, database_url), tmp_path)
    assert result.returncode == 1
    assert result.stdout.startswith("audit log TAMPERED at seq 2: reordered: the record written as seq 2 is now "
                                    "at seq 3")


def test_a_log_cut_short_fails_against_the_recorded_head(logged, tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    anchor = run(("audit", "head"), env, tmp_path).stdout.strip()
    last = int(anchor.split(":")[0])
    tamper(database_url, f"DELETE FROM audit_events WHERE seq = {last}")
    plain, anchored = run_all([(("audit", "verify"), env, ""), (("audit", "verify", "--anchor", anchor), env, "")],
                              tmp_path)
    assert plain.returncode == 0  # what the chain alone cannot see, and why --help asks for an anchor
    assert anchored.returncode == 1 and f"TAMPERED at seq {last}: deleted" in anchored.stdout


def test_export_writes_json_lines_with_the_hashes(logged, tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    out = tmp_path / "audit.jsonl"
    to_file, to_stdout, future = run_all([
        (("audit", "export", "--output", str(out)), env, ""),
        (("audit", "export", "--since", "2000-01-01"), env, ""),
        (("audit", "export", "--since", "2999-01-01T00:00:00+02:00"), env, ""),
    ], tmp_path)
    assert to_file.returncode == 0, to_file.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == count(database_url) and to_file.stdout.strip() == f"{len(lines)} records written to {out}"
    assert to_stdout.stdout.splitlines() == lines and future.stdout == ""
    prev = GENESIS
    for seq, line in enumerate(lines, start=1):
        doc = json.loads(line)
        claimed = doc.pop("hash")
        assert doc["seq"] == seq and doc["prev_hash"] == prev
        assert set(doc) == {"seq", "at", "event", "user_id", "session_id", "ip", "user_agent", "details", "prev_hash"}
        body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        assert hashlib.sha256(body).hexdigest() == claimed
        prev = claimed
    assert not list(tmp_path.glob(".audit.jsonl.partial"))


def test_help_tells_the_operator_to_keep_the_head_outside_the_database(tmp_path, database_url):
    result = run(("audit", "verify", "--help"), base_env(tmp_path, database_url), tmp_path)
    assert result.returncode == 0 and "outside the database" in result.stdout and "--anchor" in result.stdout


def test_bad_input_is_one_line(tmp_path, database_url):
    env = base_env(tmp_path, database_url)
    cases = [
        (("audit", "verify", "--from", "0"), "--from"),
        (("audit", "verify", "--from", "x"), "--from"),
        (("audit", "verify", "--anchor", "12:nothex"), "SEQ:HASH"),
        (("audit", "export", "--since", "yesterday"), "ISO 8601"),
        (("audit", "export", "--output", str(tmp_path / "missing" / "dir" / "out.jsonl")), "cannot write"),
        (("audit", "export", "--output", str(tmp_path)), "--output"),
        (("audit", "verify"), "database"),
    ]
    calls = [(args, env, "") for args, _ in cases[:-1]]
    calls.append((("audit", "verify"), base_env(tmp_path, f"sqlite:///{tmp_path / 'never-migrated.sqlite3'}"), ""))
    for result, (_, mentions) in zip(run_all(calls, tmp_path), cases, strict=True):
        assert_one_line_failure(result, mentions=mentions)
