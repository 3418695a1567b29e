"""``idp breached import`` / ``idp breached check`` and an operator-set password, as a
person runs them, configured by IDP_* variables: through the command's entry point in
this process (tests/command.py), and where marked through the installed console script
in a subprocess (the exit status a script sees, stderr as a terminal-less shell gets it)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from tests.command import Result, invoke, run_script
from tests.fixtures import cli_environment, hibp_lines

BREACHED = "tangerine submarine forever 1987"
GOOD = "ferret mandolin quietly orbits"


@pytest.fixture
def env(settings, tmp_path: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return cli_environment(settings, IDP_BREACHED_CORPUS=str(tmp_path / "corpus" / "breached.idpbf"))


def idp(env: dict[str, str], *args: str, stdin: bytes = b"") -> Result:
    return invoke(args, env, stdin)


def idp_script(env: dict[str, str], *args: str, stdin: bytes = b"") -> Result:
    return run_script(args, env, stdin, timeout=60)


def test_import_then_check(env, tmp_path):
    source = tmp_path / "pwned.txt"
    source.write_bytes(hibp_lines([BREACHED], filler=5000) + b"not a hash line\r\n" + b"\x00\xff" * 50 + b"\n")
    result = idp(env, "breached", "import", str(source))
    assert result.returncode == 0, result.stderr
    assert "2 skipped" in result.stdout and "bits/entry" in result.stdout
    assert Path(env["IDP_BREACHED_CORPUS"]).exists()

    found = idp(env, "breached", "check", stdin=BREACHED.encode() + b"\n")
    assert found.returncode == 1 and found.stdout.startswith("breached:")
    assert len(found.stdout.strip().splitlines()) == 1
    missing = idp(env, "breached", "check", stdin=GOOD.encode() + b"\r\n")
    assert missing.returncode == 0 and "not found" in missing.stdout
    # The shipped list is folded into every import.
    assert idp(env, "breached", "check", stdin=b"123456\n").returncode == 1


def test_check_without_an_import_uses_the_shipped_list(env):
    # Console script: 1 (breached) and 0 are what a script branches on.
    assert idp_script(env, "breached", "check", stdin=b"qwerty\n").returncode == 1
    assert idp_script(env, "breached", "check", stdin=GOOD.encode()).returncode == 0


def test_plain_lists_and_odd_unicode(env, tmp_path):
    source = tmp_path / "list.txt"
    source.write_bytes("Ｐａｓｓｗｏｒｄ-fullwidth\nzażółć gęślą jaźń\n".encode() + b"\xc3\x28 broken\n")
    result = idp(env, "breached", "import", "--format", "plain", str(source))
    assert result.returncode == 0, result.stderr
    assert "1 not UTF-8" in result.stdout
    assert idp(env, "breached", "check", stdin=b"Password-fullwidth\n").returncode == 1  # NFKC
    assert idp(env, "breached", "check", stdin="zażółć gęślą jaźń".encode()).returncode == 1


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        (b"", "no password on standard input"),
        (b"\n", "no password on standard input"),
        (b"\xff\xfe\xfd\n", "not valid UTF-8"),
        (b"\xed\xa0\x80\n", "not valid UTF-8"),  # an encoded lone surrogate
        (b"x" * 5000, "longer than any password"),
    ],
)
def test_check_refuses_bad_input_in_one_line(env, stdin, message):
    result = idp(env, "breached", "check", stdin=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_import_refuses_bad_files_in_one_line(env, tmp_path):
    # Console script: stderr as a shell gets it, progress label and all.
    missing = idp_script(env, "breached", "import", str(tmp_path / "nope.txt"))
    assert missing.returncode != 0 and "Traceback" not in missing.stderr
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(200_000).replace(b"\n", b"x"))
    result = idp_script(env, "breached", "import", "--format", "sha1", str(junk))
    assert result.returncode == 1
    assert "no valid line" in result.stderr and "longer than 4096 bytes" in result.stderr
    # (a progress label may precede it when stderr is not a terminal)
    assert [line for line in result.stderr.splitlines() if line.startswith("idp:")] == [result.stderr.splitlines()[-1]]
    assert not Path(env["IDP_BREACHED_CORPUS"]).exists()


def test_operator_cannot_set_a_breached_password(app, env, tmp_path):
    source = tmp_path / "pwned.txt"
    source.write_bytes(hibp_lines([BREACHED], filler=100))
    assert idp(env, "breached", "import", str(source)).returncode == 0
    refused = idp(env, "users", "create", "--email", "ops@example.com", "--password-stdin", "--verified",
                  stdin=BREACHED.encode() + b"\n")
    assert refused.returncode == 1
    assert "data breach" in refused.stderr and "Choose a different one" in refused.stderr
    created = idp(env, "users", "create", "--email", "ops@example.com", "--password-stdin", "--verified",
                  stdin=GOOD.encode() + b"\n")
    assert created.returncode == 0, created.stderr
    assert '"ops@example.com"' in created.stdout


def test_help_is_there(env):
    for args in (["breached", "--help"], ["breached", "import", "--help"], ["breached", "check", "--help"]):
        result = idp(env, *args)
        assert result.returncode == 0 and "Usage" in result.stdout


def test_digest_of_check_matches_the_published_sha1():
    # The corpus is keyed on SHA-1 of the UTF-8 password, as Pwned Passwords publishes it.
    assert hashlib.sha1(b"password").hexdigest().upper().startswith("5BAA61E4C9B93F3F")
