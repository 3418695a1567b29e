"""Redirect URI rules: what may be registered, and when a requested URI matches.

Matching is exact string comparison (RFC 9700 §4.1.3; OAuth 2.1 §2.3.1): no prefix,
no case folding, no normalisation. The one exception is RFC 8252 §7.3: for a native
(public) client a loopback IP redirect URI matches with any port, because the app
picks a free port at run time; nothing else about the URI may vary.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from idp.errors import InvalidInput

MAX_LENGTH = 2048
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]")
# RFC 8252 §7.1: private-use schemes are reverse domain names of something the app owns.
_PRIVATE_SCHEME = re.compile(r"^[a-z][a-z0-9+\-]*(\.[a-z0-9+\-]+)+$")
_LOOPBACK_NETLOC = re.compile(r"^(127\.0\.0\.1|\[::1\])(?::([0-9]{1,5}))?$")


def validate_for_registration(uri: str, *, public: bool) -> str:
    """Return ``uri`` unchanged if it may be registered; raise InvalidInput otherwise."""
    if not uri or len(uri) > MAX_LENGTH or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in uri):
        raise InvalidInput(f"redirect URI {uri[:80]!r} is empty, too long or contains spaces or control characters")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise InvalidInput(f"redirect URI {uri!r} is not a valid URI") from None
    if parts.fragment or "#" in uri:
        raise InvalidInput(f"redirect URI {uri!r} must not have a fragment (RFC 6749 §3.1.2)")
    if "*" in uri:
        raise InvalidInput(f"redirect URI {uri!r}: wildcards are not allowed; register each URI exactly")
    if parts.scheme == "https":
        if not parts.hostname or parts.username is not None or parts.password is not None:
            raise InvalidInput(f"redirect URI {uri!r} must name a host and no user information")
        return uri
    if parts.scheme == "http":
        if parts.username is not None or parts.password is not None:
            raise InvalidInput(f"redirect URI {uri!r} must not contain user information")
        if _LOOPBACK_NETLOC.match(parts.netloc) or parts.hostname == "localhost":
            return uri
        raise InvalidInput(f"redirect URI {uri!r}: plain http is allowed only for loopback addresses")
    if _PRIVATE_SCHEME.match(parts.scheme):
        if not public:
            raise InvalidInput(f"redirect URI {uri!r}: private-use URI schemes are for public (native) clients")
        if parts.netloc:
            raise InvalidInput(f"redirect URI {uri!r}: use the form {parts.scheme}:/path (RFC 8252 §7.1)")
        return uri
    raise InvalidInput(
        f"redirect URI {uri!r}: use https, http on a loopback address, or a reverse-DNS private-use scheme"
    )


def _without_loopback_port(uri: str) -> str | None:
    """``uri`` with the port of an http loopback IP literal removed; None if it is not one."""
    if not uri.startswith("http://"):
        return None
    rest = uri[len("http://") :]
    end = len(rest)
    for sep in "/?#":
        index = rest.find(sep)
        if index != -1:
            end = min(end, index)
    netloc, tail = rest[:end], rest[end:]
    match = _LOOPBACK_NETLOC.match(netloc)
    if match is None:
        return None
    port = match.group(2)
    if port is not None and not 0 < int(port) < 65536:
        return None
    return "http://" + match.group(1) + tail


def matches(registered: list[str], requested: str, *, public: bool) -> bool:
    if not requested or len(requested) > MAX_LENGTH:
        return False
    if requested in registered:
        return True
    if not public:
        return False
    stripped = _without_loopback_port(requested)
    if stripped is None or "#" in stripped:
        return False
    for uri in registered:
        if _without_loopback_port(uri) == stripped:
            return True
    return False


def origin_of(uri: str) -> str | None:
    """The web origin (scheme://host[:port]) of an http(s) URI, for CORS; None otherwise."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"
