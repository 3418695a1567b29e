"""The provider's signing keys (RFC 7517 JWK Set), fetched and cached for local checks.

Cache-Control decides how long a fetched set is fresh (bounded below by
``min_refetch_interval`` and above by ``max_age``). A ``kid`` not in the set triggers a
refetch, but at most one fetch per ``min_refetch_interval``, and only one at a time
whatever the number of threads: a flood of tokens with random ``kid`` values costs the
provider one request. When a refetch fails the last good keys stay in use for
``keep_stale_for`` seconds, so a provider restart does not take every service down;
after that the kit fails closed (``ProviderUnavailable``).

Only public signature keys this kit can verify are kept: EC P-256 (ES256) and OKP
Ed25519 (EdDSA, RFC 8037; "Ed25519", RFC 9864). Symmetric ("oct") keys, private keys,
encryption keys and duplicate ``kid`` values are dropped, never trusted.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from joserfc.jwk import Key, import_key

from idp.rp import http
from idp.rp.errors import ProviderUnavailable

log = logging.getLogger(__name__)

# (kty, crv) -> the JWS algorithms such a key may verify. Nothing else is ever accepted.
KEY_ALGORITHMS: Mapping[tuple[str, str], frozenset[str]] = MappingProxyType({
    ("EC", "P-256"): frozenset({"ES256"}),
    ("OKP", "Ed25519"): frozenset({"EdDSA", "Ed25519"}),
})
_PUBLIC_MEMBERS = ("kty", "crv", "x", "y")
MAX_KID_LENGTH = 256


@dataclass(frozen=True)
class VerificationKey:
    kid: str
    key: Key
    algorithms: frozenset[str]


@dataclass(frozen=True)
class _Snapshot:
    keys: Mapping[str, VerificationKey]
    fresh_until: float
    usable_until: float


class JwksCache:
    def __init__(
        self,
        jwks_uri: str,
        *,
        min_refetch_interval: float = 30.0,
        default_max_age: float = 300.0,
        max_age: float = 86400.0,
        keep_stale_for: float = 3600.0,
        timeout: float = 5.0,
        max_bytes: int = 64 * 1024,
        max_keys: int = 32,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < min_refetch_interval <= max_age:
            raise ValueError("need 0 < min_refetch_interval <= max_age")
        self.jwks_uri = http.check_url(jwks_uri)
        self.min_refetch_interval = float(min_refetch_interval)
        self.default_max_age = float(default_max_age)
        self.max_age = float(max_age)
        self.keep_stale_for = float(keep_stale_for)
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_keys = max_keys
        self._clock = clock
        self._snapshot = _Snapshot(MappingProxyType({}), -math.inf, -math.inf)
        self._fetch_lock = threading.Lock()
        self._last_attempt = -math.inf
        #: HTTP fetches made (successful or not): what the provider saw of us.
        self.fetches = 0
        self.failures = 0

    def get(self, kid: str) -> VerificationKey | None:
        """The key with this ``kid``, or None if the provider does not publish it.

        Raises ``ProviderUnavailable`` when no usable key set could be had at all.
        """
        snapshot = self._snapshot
        now = self._clock()
        if now < snapshot.fresh_until:
            found = snapshot.keys.get(kid)
            if found is not None:
                return found  # the hot path: no lock, no I/O
            snapshot = self._refresh(wait=True)
        else:
            # Stale: refresh. A thread that still holds a usable key for this kid does not
            # queue behind a fetch another thread is already making.
            usable = kid in snapshot.keys and now < snapshot.usable_until
            snapshot = self._refresh(wait=not usable)
        if self._clock() >= snapshot.usable_until:
            raise ProviderUnavailable(f"no usable key set from {self.jwks_uri}")
        return snapshot.keys.get(kid)

    def refresh(self) -> None:
        """Fetch now (still at most once per ``min_refetch_interval``), e.g. to warm up at start."""
        self._refresh(wait=True)

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(self._snapshot.keys)

    def _refresh(self, *, wait: bool) -> _Snapshot:
        if not self._fetch_lock.acquire(blocking=wait):
            return self._snapshot
        try:
            # Whoever waited on the lock finds the fetch just made and does not repeat it.
            if self._clock() - self._last_attempt < self.min_refetch_interval:
                return self._snapshot
            self._last_attempt = self._clock()
            self.fetches += 1
            try:
                keys, lifetime = self._fetch()
            except ProviderUnavailable as error:
                self.failures += 1
                log.warning("JWKS fetch failed, keeping the last good keys: %s", error)
                return self._snapshot
            fetched_at = self._clock()
            self._snapshot = _Snapshot(
                MappingProxyType(keys), fetched_at + lifetime, fetched_at + lifetime + self.keep_stale_for
            )
            return self._snapshot
        finally:
            self._fetch_lock.release()

    def _fetch(self) -> tuple[dict[str, VerificationKey], float]:
        response = http.request(self.jwks_uri, timeout=self.timeout, max_bytes=self.max_bytes)
        if response.status != 200:
            raise ProviderUnavailable(f"{self.jwks_uri} answered {response.status}")
        keys = parse_jwks(response.json_object(), max_keys=self.max_keys)
        no_cache, max_age = http.cache_control_max_age(response.headers)
        if no_cache:
            lifetime = self.min_refetch_interval
        else:
            lifetime = self.default_max_age if max_age is None else max_age
        return keys, min(max(lifetime, self.min_refetch_interval), self.max_age)


def parse_jwks(document: dict[str, Any], *, max_keys: int) -> dict[str, VerificationKey]:
    """The verification keys in a JWK Set; anything not clearly one of ours is left out."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise ProviderUnavailable("JWKS without a keys list")
    if len(entries) > max_keys:
        raise ProviderUnavailable(f"JWKS with {len(entries)} keys, more than {max_keys}")
    keys: dict[str, VerificationKey] = {}
    duplicates: set[str] = set()
    for jwk in entries:
        key = _verification_key(jwk)
        if key is None:
            continue
        if key.kid in keys:
            duplicates.add(key.kid)
        keys[key.kid] = key
    for kid in duplicates:
        # Two keys under one kid: which one signed is anyone's guess, so neither is trusted.
        del keys[kid]
    return keys


def _verification_key(jwk: object) -> VerificationKey | None:
    if not isinstance(jwk, dict):
        return None
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid or len(kid) > MAX_KID_LENGTH:
        return None
    if jwk.get("use", "sig") != "sig" or "d" in jwk:
        return None
    key_ops = jwk.get("key_ops")
    if key_ops is not None and (not isinstance(key_ops, list) or "verify" not in key_ops):
        return None
    kty, crv = jwk.get("kty"), jwk.get("crv")
    if not isinstance(kty, str) or not isinstance(crv, str):
        return None
    algorithms = KEY_ALGORITHMS.get((kty, crv))
    if algorithms is None:
        return None
    alg = jwk.get("alg")
    if alg is not None:
        if alg not in algorithms:
            return None
        algorithms = frozenset({alg})
    try:
        key = import_key({name: jwk[name] for name in _PUBLIC_MEMBERS if name in jwk})
    except Exception:  # joserfc and cryptography raise many types for a bad point or encoding
        return None
    return VerificationKey(kid=kid, key=key, algorithms=algorithms)
