"""The ``idp`` command run two ways: in this process through its real entry point, or as
the installed console script in a subprocess.

In-process is the default. A subprocess costs an interpreter start-up and the imports of
the whole provider (about a second of CPU), and the CLI tests run close to two hundred
commands per backend. Each command group keeps tests that start the console script
itself, for what only a real process shows: that the entry point is installed, the exit
code, and the one line on stderr as a shell sees them. Tests that need a process of their
own for what they prove (signals, processes racing, the exit of a process) start one too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import click.formatting
from click.testing import CliRunner

IDP = Path(sys.executable).with_name("idp")  # the console script pip installed


@dataclass
class Result:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


class _LastResortLog(logging.Handler):
    """What Python prints in a process without logging handlers (``logging.lastResort``):
    WARNING and above, the message alone, on the stderr of the moment. Under pytest the
    root logger has pytest's handlers instead, so without this an in-process command
    would lose from its stderr the lines the console script prints. Only this thread's
    records: other threads of the test process (a live server) are not the command."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread == self.thread

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


class CommandTimeout(BaseException):
    """An in-process command still running after its timeout. A BaseException, so that
    the command's own ``except Exception`` cannot take it for one of its errors."""


@contextlib.contextmanager
def _deadline(seconds: float, args: Sequence[str]) -> Iterator[None]:
    """What the subprocess timeout was: a hung command fails its test instead of hanging
    the session. SIGALRM, so the main thread only (where pytest runs tests)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(_signum: int, _frame: object) -> None:
        raise CommandTimeout(f"idp {' '.join(args)}: still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _script_help_width(env: Mapping[str, str]) -> int:
    """The width click wraps help to in a console script whose output is a pipe:
    shutil.get_terminal_size() is COLUMNS or else 80, and click.formatting.HelpFormatter
    takes at most 80 of it, less a margin of 2, and at least 50."""
    columns = env.get("COLUMNS", "")
    return max(min(int(columns) if columns.isdigit() and int(columns) > 0 else 80, 80) - 2, 50)


def invoke(args: Sequence[str], env: Mapping[str, str], stdin: str | bytes = b"", *,
           cwd: Path | None = None, timeout: float = 300) -> Result:
    """``idp ARGS`` in this process, as the console script runs it: through
    ``idp.cli.main`` (its one-line error handling included), with ``os.environ`` exactly
    ``env`` and the working directory ``cwd`` while it runs (the command reads its
    settings from the one, and resolves the relative default paths against the other, as
    a subprocess would), ``stdin`` as standard input and both output streams captured.
    An exception that escapes is printed as the interpreter would (a traceback on stderr,
    exit 1), so tests that look for "Traceback" see it; after ``timeout`` seconds the
    command is interrupted with CommandTimeout, which fails the test."""
    from idp.cli import main

    # Unset whatever the subprocess would not have inherited (IDP_TEST_DATABASE, say).
    environment: dict[str, str | None] = {key: None for key in os.environ if key not in env}
    environment.update(env)
    with (
        contextlib.chdir(cwd or os.getcwd()),
        CliRunner().isolation(input=stdin, env=environment) as (out, err, _mixed),
        _deadline(timeout, args),
    ):
        # Help text wrapped as the console script wraps it (CliRunner would force 80).
        click.formatting.FORCED_WIDTH = _script_help_width(env)
        root = logging.getLogger()
        handler = _LastResortLog()
        root.addHandler(handler)
        try:
            main(list(args))
            code = 0  # a process whose main returns exits 0
        except SystemExit as stop:
            if stop.code is None or isinstance(stop.code, int):
                code = stop.code or 0
            else:  # sys.exit("message"): printed on stderr, status 1
                print(stop.code, file=sys.stderr)
                code = 1
        except Exception:  # noqa: BLE001 - what an uncaught exception does to a process
            traceback.print_exc(file=sys.stderr)
            code = 1
        finally:
            root.removeHandler(handler)
            sys.stdout.flush()
            sys.stderr.flush()
        return Result(tuple(args), code, out.getvalue().decode("utf-8", "replace"),
                      err.getvalue().decode("utf-8", "replace"))


def run_script(args: Sequence[str], env: Mapping[str, str], stdin: str | bytes = "", *,
               cwd: Path | None = None, timeout: float = 180) -> Result:
    """``idp ARGS`` as an operator runs it: the installed console script, a process of its own."""
    return run_scripts([(args, env, stdin)], cwd=cwd, timeout=timeout)[0]


def run_scripts(calls: Sequence[tuple[Sequence[str], Mapping[str, str], str | bytes]], *,
                cwd: Path | None = None, timeout: float = 180) -> list[Result]:
    """Start every (args, env, stdin) at once, then collect them in order: each is a whole
    interpreter start-up, and two cores run two at a time. Standard input given as bytes
    is written as it is (the output is then decoded as UTF-8)."""
    procs = [
        (tuple(args), stdin, subprocess.Popen([str(IDP), *args], env=dict(env), cwd=cwd, text=isinstance(stdin, str),
                                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        for args, env, stdin in calls
    ]
    results = []
    for args, stdin, proc in procs:
        out, err = proc.communicate(stdin, timeout=timeout)
        if isinstance(out, bytes):
            out, err = out.decode(), err.decode()
        results.append(Result(args, proc.returncode, out, err))
    return results
