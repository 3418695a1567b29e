"""Signing keys: generated on first start, private halves encrypted with the KEK.

Lifecycle (DESIGN section 2): ``next`` (published in the JWKS so caches learn it before
it signs) -> ``active`` (verifies; the most recently activated active key of an
algorithm signs) -> ``retired`` (gone from the JWKS; its tokens are rejected). Rotation
proper (schedules, overlap windows) is its own issue; ``rotate`` and ``retire`` here are
the operator's manual levers.

Loaded keys are cached per process for ``KEY_CACHE_SECONDS``: signing and verifying
must not cost a database round trip and an AES-GCM decryption on every request. A
rotation or retirement made by another process (the CLI) is seen within that time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from joserfc.jwk import Key
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from idp.crypto.kek import Kek
from idp.db import utcnow
from idp.keys import jose
from idp.models import SigningKey

KEY_CACHE_SECONDS = 10.0
NEXT, ACTIVE, RETIRED = "next", "active", "retired"
_PURPOSE = "signing-key:"  # AES-GCM associated data: a ciphertext is bound to its kid


class SigningKeyError(LookupError):
    pass


class KeyStore(Protocol):
    def published(self) -> list[SigningKey]: ...
    def all(self) -> list[SigningKey]: ...
    def get(self, kid: str) -> SigningKey | None: ...
    def add(self, key: SigningKey) -> None: ...


class SqlKeyStore:
    def __init__(self, db: Session) -> None:
        self.db = db

    def published(self) -> list[SigningKey]:
        stmt = select(SigningKey).where(SigningKey.state.in_((NEXT, ACTIVE))).order_by(SigningKey.created_at)
        return list(self.db.scalars(stmt))

    def all(self) -> list[SigningKey]:
        return list(self.db.scalars(select(SigningKey).order_by(SigningKey.created_at)))

    def get(self, kid: str) -> SigningKey | None:
        return self.db.get(SigningKey, kid)

    def add(self, key: SigningKey) -> None:
        self.db.add(key)
        self.db.flush()


class MemoryKeyStore:
    """The in-memory twin (STYLE 5): for unit tests and tools that need no database."""

    def __init__(self) -> None:
        self._rows: dict[str, SigningKey] = {}

    def published(self) -> list[SigningKey]:
        return sorted((r for r in self._rows.values() if r.state in (NEXT, ACTIVE)), key=lambda r: r.created_at)

    def all(self) -> list[SigningKey]:
        return sorted(self._rows.values(), key=lambda r: r.created_at)

    def get(self, kid: str) -> SigningKey | None:
        return self._rows.get(kid)

    def add(self, key: SigningKey) -> None:
        self._rows[key.kid] = key


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    alg: str
    state: str
    activated_at: float
    private: Key = field(repr=False)
    public_jwk: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class KeyRing:
    """The published keys of one moment: what signs, what verifies, what the JWKS shows."""

    keys: dict[str, LoadedKey]
    loaded_at: float

    def signer(self, alg: str) -> LoadedKey:
        candidates = [k for k in self.keys.values() if k.alg == alg and k.state == ACTIVE]
        if not candidates:
            raise SigningKeyError(f"no active {alg} signing key")
        return max(candidates, key=lambda k: k.activated_at)

    def verifier(self, kid: object) -> LoadedKey | None:
        return self.keys.get(kid) if isinstance(kid, str) else None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [dict(k.public_jwk) for k in self.keys.values()]}

    @property
    def algorithms(self) -> list[str]:
        return [a for a in jose.ALGORITHMS if any(k.alg == a and k.state == ACTIVE for k in self.keys.values())]


class KeyCache:
    """Process-wide holder of the current KeyRing (one per Registry)."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._ring: KeyRing | None = None
        self._lock = threading.Lock()

    def get(self) -> KeyRing | None:
        ring = self._ring
        if ring is not None and time.monotonic() - ring.loaded_at < self.ttl:
            return ring
        return None

    def put(self, ring: KeyRing) -> None:
        with self._lock:
            self._ring = ring

    def invalidate(self) -> None:
        with self._lock:
            self._ring = None


class KeyService:
    # Several keys from day one: an active and a pre-published next ES256 key, and an
    # active EdDSA key for clients that register id_token_signed_response_alg=EdDSA.
    INITIAL = ((jose.DEFAULT_ALGORITHM, ACTIVE), (jose.DEFAULT_ALGORITHM, NEXT), ("EdDSA", ACTIVE))

    def __init__(self, *, store: KeyStore, kek: Kek, cache: KeyCache, sessionmaker: Any = None) -> None:
        self.store = store
        self.kek = kek
        self.cache = cache
        # For creating missing keys in their own, committed transaction (see _load).
        self.sessionmaker = sessionmaker

    # ----------------------------------------------------------------- reading
    def ring(self) -> KeyRing:
        ring = self.cache.get()
        if ring is None:
            ring = self._load()
            self.cache.put(ring)
        return ring

    def _load(self) -> KeyRing:
        rows = self.store.published()
        if not any(r.state == ACTIVE and r.alg == jose.DEFAULT_ALGORITHM for r in rows):
            if self.sessionmaker is None:  # CLI and tests: the caller commits
                self.ensure_initial_keys()
                rows = self.store.published()
            else:
                # Normally done at start-up. Here keys must be committed before they sign
                # anything, whatever the current request later does with its transaction.
                with self.sessionmaker() as db:
                    own = KeyService(store=SqlKeyStore(db), kek=self.kek, cache=self.cache)
                    own.ensure_initial_keys()
                    db.commit()
                    return own._load()
        keys = {}
        for row in rows:
            pem = self.kek.decrypt(row.private_key_encrypted, purpose=_PURPOSE + row.kid)
            keys[row.kid] = LoadedKey(
                kid=row.kid,
                alg=row.alg,
                state=row.state,
                activated_at=row.activated_at.timestamp() if row.activated_at else 0.0,
                private=jose.load_private(pem, kid=row.kid, alg=row.alg),
                public_jwk=dict(row.public_jwk),
            )
        return KeyRing(keys=keys, loaded_at=time.monotonic())

    def list(self) -> list[SigningKey]:
        return self.store.all()

    # ----------------------------------------------------------------- writing
    def ensure_initial_keys(self) -> bool:
        """Create the day-one keys when no default-algorithm key is active. True if created."""
        rows = self.store.published()
        if any(r.state == ACTIVE and r.alg == jose.DEFAULT_ALGORITHM for r in rows):
            return False
        for alg, state in self.INITIAL:
            if not any(r.alg == alg and r.state == state for r in rows):
                self._create(alg, state)
        self.cache.invalidate()
        return True

    def rotate(self, alg: str = jose.DEFAULT_ALGORITHM) -> SigningKey:
        """Promote the ``next`` key of ``alg`` to active (it signs from now on) and
        publish a fresh ``next``. Older active keys keep verifying until retired."""
        if alg not in jose.ALGORITHMS:
            raise SigningKeyError(f"unsupported algorithm {alg!r}; choose one of {', '.join(jose.ALGORITHMS)}")
        rows = self.store.published()
        nxt = next((r for r in rows if r.alg == alg and r.state == NEXT), None)
        if nxt is None:
            nxt = self._create(alg, NEXT)
        nxt.state = ACTIVE
        nxt.activated_at = utcnow()
        self._create(alg, NEXT)
        self.cache.invalidate()
        return nxt

    def retire(self, kid: str) -> SigningKey:
        """Withdraw a key: gone from the JWKS, and tokens it signed stop verifying."""
        row = self.store.get(kid)
        if row is None:
            raise SigningKeyError(f"no signing key {kid!r}")
        if row.state == RETIRED:
            return row
        if row.state == ACTIVE:
            others = [r for r in self.store.published() if r.alg == row.alg and r.state == ACTIVE and r.kid != kid]
            if not others:
                raise SigningKeyError(f"{kid} is the only active {row.alg} key; rotate first")
        row.state = RETIRED
        row.retired_at = utcnow()
        self.cache.invalidate()
        return row

    def _create(self, alg: str, state: str) -> SigningKey:
        generated = jose.generate(alg)
        row = SigningKey(
            kid=generated.kid,
            alg=alg,
            state=state,
            public_jwk=generated.public_jwk,
            private_key_encrypted=self.kek.encrypt(generated.private_pem, purpose=_PURPOSE + generated.kid),
            created_at=utcnow(),
            activated_at=utcnow() if state == ACTIVE else None,
        )
        self.store.add(row)
        return row


def ensure_keys_at_start(sessionmaker: Any, kek: Kek, cache: KeyCache) -> None:
    """First start: create the signing keys in their own transaction (before any request,
    so no request ever has to generate keys while holding other locks). A database
    that is not migrated yet is left alone: keys are then created on first use."""
    try:
        with sessionmaker() as db:
            if KeyService(store=SqlKeyStore(db), kek=kek, cache=cache).ensure_initial_keys():
                db.commit()
    except SQLAlchemyError:
        return
