"""``idp keys``: the signing keys (DESIGN section 5)."""

from __future__ import annotations

import json

import click

from idp.cli.common import fail, services_scope
from idp.keys import SigningKeyError


@click.group()
def keys() -> None:
    """Token signing keys (next -> active -> retired)."""


@keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print as JSON lines.")
def keys_list(as_json: bool) -> None:
    """Every key with its state; creates the day-one keys if there are none."""
    with services_scope() as services:
        services.signing_keys.ensure_initial_keys()
        for key in services.signing_keys.list():
            row = {
                "kid": key.kid,
                "alg": key.alg,
                "state": key.state,
                "created_at": key.created_at.isoformat(),
                "activated_at": key.activated_at.isoformat() if key.activated_at else None,
                "retired_at": key.retired_at.isoformat() if key.retired_at else None,
            }
            click.echo(json.dumps(row) if as_json else f"{key.kid}  {key.alg:<6} {key.state}")


@keys.command("rotate")
@click.option("--alg", default="ES256", show_default=True, help="ES256 or EdDSA.")
def keys_rotate(alg: str) -> None:
    """Promote the published next key to active and publish a new next key."""
    with services_scope() as services:
        services.signing_keys.ensure_initial_keys()
        try:
            key = services.signing_keys.rotate(alg)
        except SigningKeyError as error:
            fail(str(error))
        click.echo(f"{key.kid} is now the active {key.alg} signing key")


@keys.command("retire")
@click.argument("kid")
def keys_retire(kid: str) -> None:
    """Remove a key from the JWKS; tokens it signed stop being accepted."""
    with services_scope() as services:
        try:
            key = services.signing_keys.retire(kid)
        except SigningKeyError as error:
            fail(str(error))
        click.echo(f"{key.kid} is retired")
