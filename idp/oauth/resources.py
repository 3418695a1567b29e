"""RFC 8707 resource indicators: which API an access token is for.

A client names the API it wants to call with ``resource=<URI>`` at /authorize and at
/token; the access token then carries that URI as ``aud`` (RFC 9068 §3), so a token the
shop got for the wallet is refused by any other API, and a token stolen from one API
cannot be replayed at another. A resource is known when a client registered it as the
API it serves (``--resource-uri``; that client may introspect such tokens) or when it
is this provider's own admin API (settings.admin_audience). Anything else is
``invalid_target`` (RFC 8707 §2): tokens are never minted for an audience nobody owns.

Not built: per-resource scope lists. A client may ask for any scope registered for it,
whatever the resource; resource servers check the scope they need (idp.rp).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749.errors import OAuth2Error

MAX_RESOURCES = 4
MAX_RESOURCE_LENGTH = 2048


class InvalidTargetError(OAuth2Error):
    """RFC 8707 §2: the requested resource is invalid, unknown, or not allowed."""

    error = "invalid_target"
    status_code = 400


def parse(values: Sequence[str], *, is_known: Callable[[str], bool]) -> list[str]:
    """The requested resources, in order and without repeats; InvalidTargetError when any
    is malformed (RFC 8707 §2: absolute URI, no fragment) or names no registered API."""
    resources = list(dict.fromkeys(values))
    if len(resources) > MAX_RESOURCES:
        raise InvalidTargetError("Too many resource parameters.")
    for value in resources:
        if not value or len(value) > MAX_RESOURCE_LENGTH or not all(" " < ch <= "~" for ch in value):
            raise InvalidTargetError("The resource parameter must be an absolute URI.")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment or "#" in value:
            raise InvalidTargetError("The resource parameter must be an absolute http(s) URI without a fragment.")
        if not is_known(value):
            raise InvalidTargetError("The resource is not an API registered with this provider.")
    return resources


def narrowed(requested: Sequence[str], granted: Sequence[str]) -> list[str]:
    """At the token endpoint a client may narrow the granted resources, never widen them."""
    if not requested:
        return list(granted)
    extra = [r for r in requested if r not in granted]
    if extra:
        raise InvalidTargetError("The resource was not part of the grant.")
    return list(dict.fromkeys(requested))
