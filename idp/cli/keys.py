"""``idp keys``: the signing keys (DESIGN section 5; lifecycle in idp/keys/service.py)."""

from __future__ import annotations

import json

import click

from idp.algorithms import ALGORITHMS
from idp.cli.common import fail, services_scope


@click.group()
def keys() -> None:
    """Token signing keys: next (published) -> active (signs) -> retired (gone)."""


def _short(moment: str | None) -> str:
    return moment[:19].replace("T", " ") + "Z" if moment else "-"


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per key and line.")
def keys_list(as_json: bool) -> None:
    """Every key with its state and dates (UTC).

    ROLE: signing (signs new tokens), verifying (stopped signing; published until its
    tokens have expired, RETIRE AT), upcoming (published; signs from ACTIVATES AT),
    standby (published; the next rotation promotes it), retired. Creates the day-one
    keys if there are none, and records any transition that has come due.
    """
    with services_scope() as services:
        service = services.signing_keys
        service.advance()
        rows = [service.describe(key) for key in service.list()]
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    header = ("KID", "ALG", "STATE", "ROLE", "CREATED", "ACTIVATES AT", "ACTIVATED", "RETIRE AT", "RETIRED")
    table = [header] + [
        (r["kid"], r["alg"], r["state"], r["role"], _short(r["created_at"]), _short(r["activates_at"]),
         _short(r["activated_at"]), _short(r["retire_at"]), _short(r["retired_at"]))
        for r in rows
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip())


@keys.command("rotate")
@click.option("--alg", type=click.Choice(ALGORITHMS), default=ALGORITHMS[0], show_default=True,
              help="Which signing key to rotate.")
def keys_rotate(alg: str) -> None:
    """Publish a successor that signs once relying parties have had time to fetch it.

    The successor (the published standby key, or a new one) signs from the moment it has
    been in the JWKS for IDP_KEY_UPCOMING_SECONDS, then on its own; the key it replaces
    stays published until every token it signed has expired, then is retired on its own.
    """
    from idp.keys import SigningKeyError

    with services_scope() as services:
        try:
            key = services.signing_keys.rotate(alg)
        except SigningKeyError as error:
            fail(str(error))
        info = services.signing_keys.describe(key)
    if info["state"] == "active":
        click.echo(f"{key.kid} is published and signs {alg} tokens from now on")
    else:
        click.echo(f"{key.kid} is published and signs {alg} tokens from {info['activates_at']}")


@keys.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Emergency: remove KID from the JWKS now; tokens it signed stop being accepted.

    Introspection and userinfo refuse them from their next request on every instance;
    relying parties that validate locally drop the key when their JWKS cache expires.
    The only active key of an algorithm cannot be retired: rotate first.
    """
    from idp.keys import SigningKeyError

    with services_scope() as services:
        try:
            key = services.signing_keys.retire(kid)
        except SigningKeyError as error:
            fail(str(error))
        click.echo(f"{key.kid} is retired")
