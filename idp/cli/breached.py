"""``idp breached import FILE...`` and ``idp breached check`` (DESIGN section 5)."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import click

from idp.cli.common import fail, load_settings

# A password is at most 256 characters (idp/accounts/passwords.py): 1 KiB of UTF-8 and a
# line end. More than that on standard input is not a password.
_MAX_STDIN = 4 * 256 + 2


def _unusable(message: str) -> None:
    """Exit 2, so that 1 keeps meaning "breached" for scripts."""
    error = click.ClickException(message)
    error.exit_code = 2
    raise error


@click.group()
def breached() -> None:
    """The breached-password corpus (Pwned Passwords format or plain lists)."""


@breached.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option(
    "--format", "fmt", type=click.Choice(["auto", "sha1", "plain"]), default="auto", show_default=True,
    help="sha1: SHA1HEX[:COUNT] lines (Pwned Passwords); plain: one password a line; auto: look at the first line.",
)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Filter file to write (default: IDP_BREACHED_CORPUS).")
@click.option("--without-shipped-list", is_flag=True,
              help="Leave out the common-password list that ships with idp (it is included by default).")
def import_(files: tuple[str, ...], fmt: str, output: Path | None, without_shipped_list: bool) -> None:
    """Build the corpus filter from FILE(s) ('-' reads standard input), replacing the old one.

    Streams: memory stays bounded whatever the input size. Lines that are not valid are
    skipped and counted. Running servers pick up the new file without a restart.
    """
    from idp.breached.filter import CorpusFormatError
    from idp.breached.importer import import_corpus
    from idp.breached.service import shipped_keys

    target = output or load_settings().breached_corpus
    with ExitStack() as stack:
        sources: list[tuple[str, BinaryIO]] = []
        total = 0
        for name in files:
            if name == "-":
                sources.append(("-", sys.stdin.buffer))
                continue
            try:
                handle = stack.enter_context(open(name, "rb"))  # noqa: SIM115 - closed by the stack
                total += os.fstat(handle.fileno()).st_size
            except OSError as error:
                fail(f"cannot read {name}: {error.strerror or error}")
            sources.append((name, handle))
        extra = [] if without_shipped_list else [shipped_keys()]
        bar = stack.enter_context(
            click.progressbar(length=max(total, 1), label="importing", file=sys.stderr, show_eta=True)
        )
        try:
            stats = import_corpus(sources, target, fmt=fmt, extra_keys=extra, progress=bar.update)
        except CorpusFormatError as error:
            fail(str(error))
        except OSError as error:
            fail(f"cannot write {target}: {error.strerror or error}")
    click.echo(f"imported into {target}: {stats.summary()}")


@breached.command("check")
def check() -> None:
    """Read one password from standard input; exit 1 when it is in the corpus, 0 if not."""
    from idp.accounts.passwords import normalize_password
    from idp.breached.service import breached_from_settings

    raw = sys.stdin.buffer.read(_MAX_STDIN + 1)
    if len(raw) > _MAX_STDIN:
        _unusable("standard input is longer than any password can be (256 characters)")
    line = raw.split(b"\n", 1)[0].removesuffix(b"\r")
    if not line:
        _unusable("no password on standard input")
    try:
        password = normalize_password(line.decode("utf-8"))
    except UnicodeDecodeError:
        _unusable("standard input is not valid UTF-8")
        return
    checker = breached_from_settings(load_settings())
    try:
        found = checker.is_breached(password)
    except Exception as error:  # noqa: BLE001 - e.g. fail-closed range API: one line, exit 2
        _unusable(f"could not check: {getattr(error, 'public_message', error)}")
        return
    if found:
        click.echo("breached: this password appears in the breached-password corpus; do not use it")
        click.get_current_context().exit(1)
    click.echo("not found in the breached-password corpus")
