"""``idp audit``: check and export the hash-chained audit log (DESIGN section 5)."""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from pathlib import Path

import click

from idp.cli.common import fail, services_scope

_ANCHOR = re.compile(r"^([1-9][0-9]{0,18}):([0-9a-f]{64})$")


class _AnchorParam(click.ParamType):
    name = "SEQ:HASH"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        from idp.audit.verify import Anchor

        match = _ANCHOR.match(value.strip().lower()) if isinstance(value, str) else None
        if match is None:
            self.fail("expected SEQ:HASH as printed by 'idp audit head' (64 hex digits)", param, ctx)
        return Anchor(int(match.group(1)), match.group(2))


class _SinceParam(click.ParamType):
    name = "ISO-8601"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        try:
            when = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            self.fail(f"not an ISO 8601 date or time: {value[:40]!r}", param, ctx)
        return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when


@click.group()
def audit() -> None:
    """The audit log: append-only, each record hash-chained to the one before."""


@audit.command("verify")
@click.option("--from", "from_seq", type=click.IntRange(min=1), default=1, show_default=True,
              help="Start at this seq, trusting the record before it.")
@click.option("--anchor", type=_AnchorParam(), default=None,
              help="A head recorded earlier with 'idp audit head': also check it is still in the log.")
def verify(from_seq: int, anchor: object) -> None:
    """Walk the log in seq order and check every hash and link.

    Exits 0 with a one-line summary ending in the head (SEQ:HASH) when the log is intact;
    exits 1 with one line naming the first broken seq and whether a record was edited,
    deleted or reordered. Someone who can write to the database could rewrite the whole
    chain or cut off its end: record the head outside the database from time to time
    (it is printed here and by 'idp audit head') and pass it back with --anchor.
    """
    from idp.audit.verify import verify_chain

    with services_scope() as services:
        report = verify_chain(services.db, from_seq=from_seq, anchor=anchor)  # type: ignore[arg-type]
    if report.finding is not None:
        f = report.finding
        click.echo(f"audit log TAMPERED at seq {f.seq}: {f.kind}: {f.detail} "
                   f"({report.checked} records intact before it)")
        sys.exit(1)
    if not report.checked:
        click.echo("audit log intact: no records" + (f" from seq {from_seq}" if from_seq > 1 else ""))
        return
    click.echo(f"audit log intact: {report.checked} records, seq {report.first_seq}..{report.head_seq}; "
               f"head {report.head_seq}:{report.head_hash}")


@audit.command("head")
def head_command() -> None:
    """Print the last record as SEQ:HASH, to keep outside the database.

    With it, 'idp audit verify --anchor SEQ:HASH' later detects a log that was cut short
    or rewritten with recomputed hashes, which the chain alone cannot.
    """
    from idp.audit.verify import head

    with services_scope() as services:
        last = head(services.db)
    click.echo(f"{last.seq}:{last.hash}" if last is not None else "the audit log is empty")


@audit.command("export")
@click.option("--since", type=_SinceParam(), default=None,
              help="Only records at or after this time (ISO 8601; without a zone, UTC).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file (replaced when complete) instead of stdout.")
def export(since: dt.datetime | None, output: Path | None) -> None:
    """Write the log as JSON lines in seq order, hash fields included.

    Each line holds seq, at, event, user_id, session_id, ip, user_agent, details,
    prev_hash and hash; SHA-256 of the line without "hash" (keys sorted, no whitespace,
    UTF-8) equals "hash", so the export can be checked without this program.
    """
    from idp.audit.verify import export_lines

    if output is None:
        with services_scope() as services:
            for line in export_lines(services.db, since=since):
                click.echo(line)
        return
    partial = output.with_name(f".{output.name}.partial")
    try:
        handle = partial.open("w", encoding="utf-8")
    except OSError as error:
        fail(f"cannot write {output}: {error.strerror}")
    count = 0
    try:
        with handle, services_scope() as services:
            for line in export_lines(services.db, since=since):
                handle.write(line + "\n")
                count += 1
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"{count} records written to {output}")
