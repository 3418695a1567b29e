"""``idp clients``: register relying parties (DESIGN section 5)."""

from __future__ import annotations

import json

import click

from idp.cli.common import services_scope


@click.group()
def clients() -> None:
    """OAuth clients (relying parties)."""


@clients.command("create")
@click.option("--name", required=True, help="Name shown to people on the consent page.")
@click.option("--redirect-uri", "redirect_uris", multiple=True, help="Exact redirect URI (repeat for more).")
@click.option("--post-logout-redirect-uri", "logout_uris", multiple=True, help="Where RP-initiated logout may return.")
@click.option("--public", is_flag=True, help="Public client (native/SPA): no secret, PKCE only.")
@click.option("--first-party", is_flag=True, help="Our own application: no consent page.")
@click.option(
    "--grant-type", "grant_types", multiple=True,
    help="authorization_code, refresh_token or client_credentials (repeat; default: the first two).",
)
@click.option("--scope", default=None, help='Scopes it may request (default: "openid email").')
@click.option("--access-token-seconds", default=600, show_default=True, type=int, help="Access-token lifetime.")
@click.option("--id-token-alg", default="ES256", show_default=True, help="ES256 or EdDSA.")
@click.option("--min-acr", default=None, help="Weakest acr this client accepts.")
@click.option("--backchannel-logout-uri", default=None,
              help="Where logout tokens are POSTed (OIDC Back-Channel Logout 1.0).")
@click.option("--resource-uri", default=None,
              help="The API this client serves (RFC 8707): tokens asked for with resource=URI carry it as aud.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def clients_create(
    name: str,
    redirect_uris: tuple[str, ...],
    logout_uris: tuple[str, ...],
    public: bool,
    first_party: bool,
    grant_types: tuple[str, ...],
    scope: str | None,
    access_token_seconds: int,
    id_token_alg: str,
    min_acr: str | None,
    backchannel_logout_uri: str | None,
    resource_uri: str | None,
    as_json: bool,
) -> None:
    """Register a client. The secret is printed once; only its hash is stored."""
    with services_scope() as services:
        client, secret = services.clients.create(
            name=name,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=logout_uris,
            public=public,
            first_party=first_party,
            grant_types=grant_types,
            scope=scope,
            access_token_seconds=access_token_seconds,
            id_token_alg=id_token_alg,
            min_acr=min_acr,
            backchannel_logout_uri=backchannel_logout_uri,
            resource_uri=resource_uri,
        )
        result: dict[str, str] = {"client_id": client.id}
        if secret is not None:
            result["client_secret"] = secret
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(f"client_id: {result['client_id']}")
        if "client_secret" in result:
            click.echo(f"client_secret: {result['client_secret']}  (shown once; store it now)")


@clients.command("demo")
def clients_demo() -> None:
    """Create the demo client (`make run` does) and print how to try a sign-in with it."""
    from idp.clients.demo import DEMO_REDIRECT_URIS, ensure_demo_client

    with services_scope() as services:
        client_id, _secret = ensure_demo_client(services)
        issuer = services.registry.settings.issuer
    click.echo(f"demo client: {client_id} (public, PKCE S256; redirect {DEMO_REDIRECT_URIS[0]} on any port)")
    click.echo(f"discovery:   {issuer}/.well-known/openid-configuration")
