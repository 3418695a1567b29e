"""The breached-password service behind ``idp.accounts.passwords.BreachedPasswords``.

``CorpusChecker`` answers from the imported filter file (IDP_BREACHED_CORPUS), mapped
read-only and shared by every worker; until a corpus is imported it answers from the
list that ships with the package. It notices a re-imported file (checked at most every
IDP_BREACHED_RELOAD_SECONDS), so a new breach takes effect at the next sign-in without
a restart. ``WithRangeApi`` adds the optional online check; ``NoBreachedPasswords``
(idp/accounts/passwords.py) is the null twin.
"""

from __future__ import annotations

import gzip
import logging
import os
import threading
import time
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from idp.accounts.passwords import BreachedPasswords, PasswordRejected
from idp.breached.filter import CompactFilter, CorpusFormatError, password_key
from idp.breached.range_api import PwnedRangeApi, RangeApiUnavailable
from idp.settings import Settings

log = logging.getLogger("idp.breached")

SHIPPED_LIST = "common-passwords.txt.gz"
FAIL_MODES = ("open", "closed")


def shipped_passwords() -> list[str]:
    """The shipped list (Django's 20,000 common breached passwords; see data/README.md)."""
    raw = resources.files("idp.breached").joinpath("data", SHIPPED_LIST).read_bytes()
    words = gzip.decompress(raw).decode("utf-8").splitlines()
    return [w for w in (line.strip() for line in words) if w]


def shipped_keys() -> np.ndarray:
    """Keys of the shipped list. It is lower-case, so the two spellings people most often
    derive from a listed word (``Password``, ``PASSWORD``) are added as well."""
    variants = set()
    for word in shipped_passwords():
        variants.update((word, word.capitalize(), word.upper()))
    return np.array(sorted(password_key(v) for v in variants), dtype=np.uint64)


@cache
def shipped_filter() -> CompactFilter:
    return CompactFilter.from_keys(shipped_keys(), source="shipped list")


class CorpusChecker:
    """Offline lookups against the imported corpus, or the shipped list until there is one."""

    def __init__(self, *, path: Path, reload_seconds: float) -> None:
        self.path = Path(path)
        self.reload_seconds = reload_seconds
        self._lock = threading.Lock()
        self._checked_at = float("-inf")
        self._identity: tuple[int, int, int] | None = None
        self._filter: CompactFilter | None = None

    @property
    def filter(self) -> CompactFilter:
        now = time.monotonic()
        if now - self._checked_at >= self.reload_seconds:
            with self._lock:
                self._checked_at = now
                self._refresh()
        return self._filter if self._filter is not None else shipped_filter()

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._identity, self._filter = None, None
            return
        except OSError as error:
            log.error("breached corpus %s cannot be read (%s); keeping the previous one", self.path, error)
            return
        identity = (st.st_ino, st.st_mtime_ns, st.st_size)
        if identity == self._identity:
            return
        try:
            self._filter = CompactFilter.open(self.path)
        except (OSError, CorpusFormatError) as error:
            # A damaged file must not switch the check off: keep what we had, say so loudly.
            log.error("breached corpus %s is unusable (%s); keeping the previous one", self.path, error)
            return
        self._identity = identity
        log.info("breached corpus %s: %d entries", self.path, len(self._filter))

    def is_breached(self, password: str) -> bool:
        return self.filter.contains(password)


class BreachCheckUnavailable(PasswordRejected):
    """Fail-closed range API: the password cannot be judged right now."""


class WithRangeApi:
    """The offline corpus first (no network for the passwords it already knows), then the
    range API. Fail mode ``open`` accepts when the API is unreachable and logs it;
    ``closed`` refuses with a try-again message (at sign-in too: the operator's choice)."""

    def __init__(self, *, offline: BreachedPasswords, online: PwnedRangeApi, fail_mode: str) -> None:
        if fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {', '.join(FAIL_MODES)}")
        self.offline = offline
        self.online = online
        self.fail_mode = fail_mode

    def is_breached(self, password: str) -> bool:
        if self.offline.is_breached(password):
            return True
        try:
            return self.online.is_breached(password)
        except RangeApiUnavailable as error:
            log.warning("breached.range_api_unavailable fail=%s reason=%s", self.fail_mode, error)
            if self.fail_mode == "open":
                return False
            raise BreachCheckUnavailable(
                "We could not check this password against known data breaches just now."
                " Wait a minute and try again."
            ) from None


def build_breached(
    *,
    corpus: Path,
    reload_seconds: float,
    range_api: bool,
    range_url: str,
    range_timeout_ms: int,
    range_fail: str,
) -> BreachedPasswords:
    offline = CorpusChecker(path=corpus, reload_seconds=reload_seconds)
    if not range_api:
        return offline
    online = PwnedRangeApi(base_url=range_url, timeout_seconds=range_timeout_ms / 1000)
    return WithRangeApi(offline=offline, online=online, fail_mode=range_fail)


def breached_from_settings(settings: Settings) -> BreachedPasswords:
    return build_breached(
        corpus=settings.breached_corpus,
        reload_seconds=settings.breached_reload_seconds,
        range_api=settings.breached_range_api,
        range_url=settings.breached_range_url,
        range_timeout_ms=settings.breached_range_timeout_ms,
        range_fail=settings.breached_range_fail,
    )
