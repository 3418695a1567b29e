"""The kit's few HTTP calls to the provider, with the standard library only.

Bounded in every direction: a timeout, a response size limit, and no redirect that
leaves the host the URL named (a JWKS or introspection answer from elsewhere must never
be believed). HTTPS only, except on loopback where the demo and the tests run.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from email.message import Message
from typing import Any
from urllib.parse import urlsplit

from idp.rp.errors import ProviderUnavailable

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
USER_AGENT = "idp-rp/1"


def check_url(url: str) -> str:
    """The URL, if the kit may talk to it; ValueError (a configuration error) if not."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return url
    raise ValueError(f"{url!r}: the provider must be reached over https (http only on loopback)")


class _SameOriginRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if (old.scheme, old.hostname, old.port) != (new.scheme, new.hostname, new.port):
            raise urllib.error.HTTPError(newurl, code, "redirect to another origin refused", headers, fp)
        if req.get_method() != "GET":
            # A POST carrying client credentials is never replayed anywhere, same host or not.
            raise urllib.error.HTTPError(newurl, code, "redirect of a POST refused", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


# No proxy from the environment: the provider is reached directly, at the address configured.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _SameOriginRedirects())


@dataclass(frozen=True)
class Response:
    status: int
    headers: Message
    body: bytes

    def json_object(self) -> dict[str, Any]:
        try:
            value = json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ProviderUnavailable("the provider answered with something that is not JSON") from None
        if not isinstance(value, dict):
            raise ProviderUnavailable("the provider answered with JSON that is not an object")
        return value


def request(url: str, *, timeout: float, max_bytes: int, data: bytes | None = None,
            headers: dict[str, str] | None = None) -> Response:
    """One exchange. Any HTTP status is returned; transport failures and oversize
    answers raise ``ProviderUnavailable``."""
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    req.add_header("User-Agent", USER_AGENT)
    req.add_header("Accept", "application/json")
    for name, value in (headers or {}).items():
        req.add_header(name, value)
    try:
        with _opener.open(req, timeout=timeout) as answer:
            return Response(answer.status, answer.headers, _read(answer, max_bytes))
    except urllib.error.HTTPError as error:
        with error:
            try:
                body = _read(error, max_bytes)
            except (OSError, ValueError, http.client.HTTPException):
                body = b""
            return Response(error.code, error.headers, body)
    except ProviderUnavailable:
        raise
    except (OSError, ValueError, http.client.HTTPException) as error:  # URLError, timeouts, resets, bad status lines
        raise ProviderUnavailable(f"{url}: {error.__class__.__name__}: {error}") from None


def _read(answer: Any, max_bytes: int) -> bytes:
    length = answer.headers.get("Content-Length") if answer.headers else None
    if length and length.isdigit() and int(length) > max_bytes:
        raise ProviderUnavailable(f"answer of {length} bytes exceeds the limit of {max_bytes}")
    body = answer.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise ProviderUnavailable(f"answer exceeds the limit of {max_bytes} bytes")
    return body


def cache_control_max_age(headers: Message) -> tuple[bool, float | None]:
    """(no_cache, max_age) from Cache-Control (RFC 9111 §5.2.2), less the ``Age`` already
    spent in caches on the way. ``no-store`` and ``no-cache`` both mean: ask again soon."""
    no_cache, max_age = False, None
    for directive in ",".join(headers.get_all("Cache-Control") or []).split(","):
        name, _, value = directive.strip().partition("=")
        name = name.strip().lower()
        if name in ("no-store", "no-cache"):
            no_cache = True
        elif name == "max-age":
            value = value.strip().strip('"')
            if value.isdigit():
                max_age = float(min(int(value), 2**31))
    if max_age is not None:
        age = (headers.get("Age") or "").strip()
        if age.isdigit():
            max_age = max(0.0, max_age - int(age))
    return no_cache, max_age
