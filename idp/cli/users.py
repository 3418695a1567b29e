from __future__ import annotations

import json
import sys

import click

from idp.cli.common import fail, services_scope


@click.group()
def users() -> None:
    """Accounts."""


@users.command("create")
@click.option("--email", required=True, help="Sign-in email address.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input (one line).")
@click.option("--verified", is_flag=True, help="Mark the email address as already verified.")
def users_create(email: str, password_stdin: bool, verified: bool) -> None:
    """Create an account. Without a password it has none until the user resets it."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            fail("no password on standard input")
    with services_scope() as services:
        user = services.accounts.create_by_operator(email, password, verified=verified)
        click.echo(json.dumps({"id": user.id, "email": user.email, "verified": user.email_verified}))


@users.command("force-reset")
@click.option("--email", help="The one account to reset.")
@click.option("--all", "everyone", is_flag=True, help="Every account, in batches; resumes an interrupted run.")
@click.option("--batch-size", type=click.IntRange(1, 10_000), default=500, show_default=True,
              help="Accounts per transaction (--all).")
@click.option("--max-batches", type=click.IntRange(1), default=None,
              help="Stop after this many batches (--all); run again to continue.")
def users_force_reset(email: str | None, everyone: bool, batch_size: int, max_batches: int | None) -> None:
    """Make passwords unusable, end sessions and tokens, mail each person a reset link.

    Second factors stay: the next sign-in needs the mailed link and the second factor.
    --all shows a line per batch on stderr; SIGTERM or Ctrl-C stops it cleanly between
    two mails, and the same command resumes it without mailing anyone twice.
    """
    if (email is None) == (not everyone):
        fail("give exactly one of --email E or --all")
    from idp.notify.queue import MailQueue

    if email is not None:
        with services_scope() as services:
            queue = MailQueue(services.registry.mail)
            mailed = services.force_reset.one(email, mail=queue)
            services.db.commit()  # the link is valid before it is mailed
            queue.flush()
            click.echo(json.dumps({"email": email, "mailed": mailed}))
        return
    _force_reset_all(batch_size, max_batches)


def _force_reset_all(batch_size: int, max_batches: int | None) -> None:
    import signal

    stop: list[int] = []

    def ask_stop(signum: int, _frame: object) -> None:
        stop.append(signum)

    previous = {sig: signal.signal(sig, ask_stop) for sig in (signal.SIGTERM, signal.SIGINT)}

    def progress(report, batch: int) -> None:  # type: ignore[no-untyped-def]
        click.echo(f"force-reset: batch {batch}: {report.users_done} accounts done, {report.mails_sent} mailed"
                   f" (run {report.run_id})", err=True)

    try:
        with services_scope() as services:
            report = services.force_reset.run_all(
                mail=services.registry.mail,
                batch_size=batch_size,
                max_batches=max_batches,
                should_stop=lambda: bool(stop),
                progress=progress,
                warn=lambda message: click.echo(f"force-reset: warning: {message}", err=True),
            )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo(json.dumps({
        "run": report.run_id, "resumed": report.resumed, "finished": report.finished, "accounts": report.users_done,
        "mailed": report.mails_sent, "unconfirmed": report.unconfirmed,
    }))
    if report.stopped == "mail_error":
        fail(f"force-reset stopped after {report.users_done} accounts: mail could not be sent ({report.error});"
             " run the same command again to resume")
    if report.stopped == "signal":
        fail(f"force-reset interrupted after {report.users_done} accounts; run the same command again to resume")
    if report.stopped == "max_batches":
        click.echo("force-reset: stopped after --max-batches; run the same command again to continue", err=True)
