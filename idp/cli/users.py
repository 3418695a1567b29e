from __future__ import annotations

import json
import sys

import click

from idp.cli.common import fail, load_settings, services_scope


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


# ------------------------------------------------ operator levers (idp/accounts/status.py)
# The admin API (idp/admin) offers the same actions through the same service.
_EMAIL = click.option("--email", required=True, help="The account's sign-in address.")


def _outcome_line(what: str, email: str, outcome) -> str:  # type: ignore[no-untyped-def]
    extra = ""
    if outcome.sessions_ended or outcome.tokens_revoked:
        extra = f" ({outcome.sessions_ended} session(s) ended, {outcome.tokens_revoked} token(s) revoked)"
    return f"{email}: {what}{'' if outcome.changed else ' (no change)'}{extra}"


@users.command("show")
@_EMAIL
@click.option("--json", "as_json", is_flag=True, help="Print as one JSON object.")
def users_show(email: str, as_json: bool) -> None:
    """Show an account: state, admin rights, factor summary, last sign-in. Never hashes or secrets."""
    with services_scope() as services:
        status = services.account_status
        info = status.describe(status.find(email=email))
    if as_json:
        click.echo(json.dumps(info))
        return
    factors = info["factors"]
    lines = [
        f"id:               {info['id']}",
        f"email:            {info['email']} ({'verified' if info['verified'] else 'not verified'})",
        f"state:            {'DISABLED since ' + info['disabled_at'] if info['disabled'] else 'active'}",
        f"administrator:    {'yes' if info['is_admin'] else 'no'}",
        f"password:         {'set' if info['password_set'] else 'none'}"
        + (" (must be changed)" if info["must_change_password"] else ""),
        f"second factors:   {factors['totp']} authenticator app(s), {factors['passkeys']} passkey(s), "
        f"{factors['recovery_codes_left']} recovery code(s) left",
        f"active sessions:  {info['active_sessions']}",
        f"created:          {info['created']}",
        f"last sign-in:     {info['last_sign_in'] or 'never'}",
    ]
    click.echo("\n".join(lines))


def _apply(email: str, action: str, done: str) -> None:
    """One AccountStatusService action by the operator (actor None: the CLI), one line."""
    with services_scope() as services:
        status = services.account_status
        user = status.find(email=email)
        outcome = getattr(status, action)(user, actor=None)
        address = user.email
    click.echo(_outcome_line(done, address, outcome))


@users.command("disable")
@_EMAIL
def users_disable(email: str) -> None:
    """Disable an account: sign-in refused, every session ended (relying parties told by
    back-channel logout), every refresh and access token revoked."""
    _apply(email, "disable", "disabled")


@users.command("enable")
@_EMAIL
def users_enable(email: str) -> None:
    """Enable a disabled account (ended sessions and revoked tokens stay ended)."""
    _apply(email, "enable", "enabled")


@users.command("unlock")
@_EMAIL
def users_unlock(email: str) -> None:
    """End the attack-protection blocks on an account, as a password reset does.

    The counters live in Redis (IDP_REDIS_URL). Without it they live inside the running
    server process, out of this command's reach: use the admin API
    (POST /admin/users/{id}/unlock) instead.
    """
    settings = load_settings()
    if settings.redis_url is None:
        fail("without IDP_REDIS_URL the counters live in the server process: "
             "unlock through the admin API (POST /admin/users/{id}/unlock)")
    _apply(email, "unlock", "unlocked")


@users.command("end-sessions")
@_EMAIL
def users_end_sessions(email: str) -> None:
    """Sign an account out everywhere: every session ended, every token revoked."""
    _apply(email, "end_sessions", "signed out everywhere")


@users.command("admin")
@_EMAIL
@click.option("--grant", is_flag=True, help="Allow the account to hold admin-API scopes.")
@click.option("--revoke", is_flag=True, help="Take admin rights away (effective at once).")
def users_admin(email: str, grant: bool, revoke: bool) -> None:
    """Grant or revoke admin rights. An administrator still needs a passkey sign-in and a
    token with the admin scopes to use the admin API."""
    if grant == revoke:
        fail("give exactly one of --grant or --revoke")
    with services_scope() as services:
        status = services.account_status
        user = status.find(email=email)
        outcome = status.set_admin(user, grant, actor=None)
        address = user.email
    click.echo(_outcome_line("is an administrator" if grant else "is no longer an administrator", address, outcome))
