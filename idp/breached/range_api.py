"""The optional online check: the Pwned Passwords range API, k-anonymity model.

Only the first 5 hex characters of SHA-1(password) leave the machine (one of 16^5
ranges, each shared by hundreds of real hashes). ``Add-Padding: true`` asks the service
to pad every answer with fake entries (count 0) to a similar size, so an observer of
the encrypted response size cannot tell which range was asked for; padded entries are
ignored here. https://haveibeenpwned.com/API/v3#PwnedPasswords

Off by default (IDP_BREACHED_RANGE_API); nothing here runs unless an operator turns it on.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

# A range answer is ~800-1000 lines of 35 + 1 + count characters; 256 KiB is ample.
MAX_RESPONSE_BYTES = 256 * 1024


class RangeApiUnavailable(Exception):
    """The range API did not give a usable answer in time (network, status, format)."""


class PwnedRangeApi:
    def __init__(self, *, base_url: str, timeout_seconds: float, user_agent: str = "idp-breached-check") -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.timeout_seconds = timeout_seconds
        self.user_agent = user_agent

    def is_breached(self, password: str) -> bool:
        """True when the suffix of SHA-1(password) is listed with a count above zero."""
        digest = hashlib.sha1(password.encode("utf-8", "surrogatepass")).hexdigest().upper()
        prefix, suffix = digest[:5], digest[5:]
        for listed, count in self._range(prefix):
            if listed == suffix:
                return count > 0  # padding entries carry a count of 0
        return False

    def _range(self, prefix: str) -> list[tuple[str, int]]:
        request = urllib.request.Request(
            self.base_url + prefix,
            headers={"Add-Padding": "true", "User-Agent": self.user_agent, "Accept": "text/plain"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:  # noqa: S310 - https or loopback by settings
                if response.status != 200:
                    raise RangeApiUnavailable(f"status {response.status}")
                body = response.read(MAX_RESPONSE_BYTES + 1)
        except RangeApiUnavailable:
            raise
        except (urllib.error.URLError, OSError, ValueError) as error:
            raise RangeApiUnavailable(f"{type(error).__name__}: {error}") from None
        if len(body) > MAX_RESPONSE_BYTES:
            raise RangeApiUnavailable("response larger than a range answer can be")
        return _parse(body)


def _parse(body: bytes) -> list[tuple[str, int]]:
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        raise RangeApiUnavailable("response is not ASCII") from None
    entries = []
    for line in text.splitlines():
        if not line.strip():
            continue
        suffix, sep, count = line.strip().partition(":")
        if not sep or len(suffix) != 35 or not count.isdigit():
            raise RangeApiUnavailable("response is not in the range API format")
        try:
            int(suffix, 16)
        except ValueError:
            raise RangeApiUnavailable("response is not in the range API format") from None
        entries.append((suffix.upper(), int(count)))
    return entries
