"""Signing keys: their lifecycle, private halves encrypted with the KEK, the key ring.

Lifecycle (DESIGN section 2, issue 7)::

    next (standby) --rotate--> next, activates_at set --activates_at--> active (signs)
        --a successor activates--> active, retire_at set (verifies only)
        --retire_at--> retired (gone from the JWKS; its tokens are rejected)

* A ``next`` key is published in the JWKS but signs nothing. Without ``activates_at``
  it is a standby (day one keeps one for ES256); with it, it signs from that moment.
* No key ever signs before it has been published for ``upcoming_seconds``, so every
  relying service's JWKS cache (max-age at most that long: idp/oauth/jwks.py) has it
  before the first token that carries its ``kid``.
* Of the active keys of an algorithm the most recently activated one signs. A key that
  stopped signing stays published until every token it signed has expired: ``retire_at``
  = the moment its successor activated + the longest lifetime of anything we sign
  (``token_seconds``) + ``leeway_seconds`` for clocks between instances.
* ``retire`` is the emergency path: the key leaves the JWKS at once.

No scheduler: the transitions are moments stored on the rows. Every process computes the
ring from them (``effective`` below), so all instances switch at the same time even
before anyone has written the new states; the states are then persisted by whichever
process gets there first, in its own committed transaction under the key lock
(``KeyStore.lock``), so two workers can never both act (and e.g. create two keys).
The optional schedule (``rotation_days``) is evaluated the same way.

Loaded keys are cached per process (``KeyCache``): signing and verifying must not cost
an AES-GCM decryption on every request. The first ring of every KeyService (one per
request, or per CLI command) compares a cheap fingerprint of the published rows with the
cached ring, so a key retired by another process (the CLI, the admin API) is refused by
the next request everywhere, not some seconds later.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from joserfc.jwk import Key
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from idp.crypto.kek import Kek
from idp.crypto.tokens import strong_etag
from idp.db import utcnow
from idp.keys import jose
from idp.models import SigningKey

if TYPE_CHECKING:
    from idp.audit import AuditService
    from idp.context import RequestContext

# A backstop only: changes are noticed by the fingerprint check and the stored moments.
KEY_CACHE_SECONDS = 300.0
# See KeyService.ring: how stale the signing path may let this process's ring become.
SIGNING_CHECK_SECONDS = 5.0
NEXT, ACTIVE, RETIRED = "next", "active", "retired"
# The longest-lived thing our keys sign: access tokens (ClientService allows 30..3600 s);
# ID tokens live 600 s, logout tokens less; refresh tokens are opaque, not signed.
MAX_TOKEN_SECONDS = 3600
# Clock differences between instances: one may still sign with the old key a little
# after another has switched, and relying parties accept a little past exp.
LEEWAY_SECONDS = 60
# After a failed attempt to persist a due transition, try again this much later.
_RETRY = dt.timedelta(seconds=1)
_PURPOSE = "signing-key:"  # AES-GCM associated data: a ciphertext is bound to its kid
# pg_advisory_xact_lock key (as idp/audit does): the first 8 bytes of SHA-256("idp.keys.lifecycle").
LIFECYCLE_LOCK_KEY = int.from_bytes(hashlib.sha256(b"idp.keys.lifecycle").digest()[:8], "big", signed=True)


class SigningKeyError(LookupError):
    pass


class KeyStore(Protocol):
    def published(self) -> list[SigningKey]: ...
    def all(self) -> list[SigningKey]: ...
    def get(self, kid: str) -> SigningKey | None: ...
    def add(self, key: SigningKey) -> None: ...
    def fingerprint(self) -> Hashable: ...
    def lock(self, *, wait: bool) -> bool: ...


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

    def fingerprint(self) -> Hashable:
        """What the ring was built from, in one indexed read of a handful of short rows."""
        stmt = select(SigningKey.kid, SigningKey.state, SigningKey.activates_at, SigningKey.retire_at).where(
            SigningKey.state.in_((NEXT, ACTIVE))
        )
        return frozenset(tuple(row) for row in self.db.execute(stmt))  # the shape of _fingerprint

    def lock(self, *, wait: bool) -> bool:
        """Serialise lifecycle writers until this transaction ends. ``wait=False`` gives up
        at once when another holds it (the caller may itself be a request whose own
        transaction holds SQLite's single write lock: waiting would be waiting for itself)."""
        conn = self.db.connection()
        if conn.dialect.name == "postgresql":
            fn = "pg_advisory_xact_lock" if wait else "pg_try_advisory_xact_lock"
            acquired = conn.execute(text(f"SELECT {fn}(:key)"), {"key": LIFECYCLE_LOCK_KEY}).scalar()
            return wait or bool(acquired)
        # SQLite: take the database's write lock first, with a no-op write (pysqlite's
        # implicit BEGIN is deferred), so that what we then read cannot be overtaken.
        raw = conn.connection.dbapi_connection
        if wait:
            conn.execute(text("UPDATE signing_keys SET kid = kid WHERE kid = ''"))
            return True
        previous = raw.execute("PRAGMA busy_timeout").fetchone()[0]  # type: ignore[union-attr]
        raw.execute("PRAGMA busy_timeout = 0")  # type: ignore[union-attr]
        try:
            conn.execute(text("UPDATE signing_keys SET kid = kid WHERE kid = ''"))
            return True
        except DBAPIError:
            return False
        finally:
            raw.execute(f"PRAGMA busy_timeout = {int(previous)}")  # type: ignore[union-attr]


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

    def fingerprint(self) -> Hashable:
        return _fingerprint(self.published())

    def lock(self, *, wait: bool) -> bool:
        return True


def _fingerprint(rows: list[SigningKey]) -> Hashable:
    return frozenset((r.kid, r.state, r.activates_at, r.retire_at) for r in rows)


@dataclass(frozen=True)
class KeyView:
    """A row as it stands at one moment, whether or not the moment has been written yet."""

    kid: str
    alg: str
    state: str
    created_at: dt.datetime
    activates_at: dt.datetime | None
    activated_at: dt.datetime | None
    retire_at: dt.datetime | None
    retired_at: dt.datetime | None

    @property
    def upcoming(self) -> bool:
        return self.state == NEXT and self.activates_at is not None


def effective(row: SigningKey, now: dt.datetime) -> KeyView:
    state, activated_at, retired_at = row.state, row.activated_at, row.retired_at
    if state == NEXT and row.activates_at is not None and row.activates_at <= now:
        state, activated_at = ACTIVE, row.activates_at
    if state == ACTIVE and row.retire_at is not None and row.retire_at <= now:
        state, retired_at = RETIRED, row.retire_at
    return KeyView(kid=row.kid, alg=row.alg, state=state, created_at=row.created_at, activates_at=row.activates_at,
                   activated_at=activated_at, retire_at=row.retire_at, retired_at=retired_at)


def _signer(views: list[KeyView], alg: str) -> KeyView | None:
    candidates = [v for v in views if v.alg == alg and v.state == ACTIVE]
    return max(candidates, key=lambda v: v.activated_at or v.created_at, default=None)


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
    # The stored rows it was computed from, and the next stored moment that changes it.
    fingerprint: Hashable = None
    changes_at: dt.datetime | None = None

    def signer(self, alg: str) -> LoadedKey:
        candidates = [k for k in self.keys.values() if k.alg == alg and k.state == ACTIVE]
        if not candidates:
            raise SigningKeyError(f"no active {alg} signing key")
        return max(candidates, key=lambda k: k.activated_at)

    def verifier(self, kid: object) -> LoadedKey | None:
        return self.keys.get(kid) if isinstance(kid, str) else None

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        return {"keys": [dict(k.public_jwk) for k in self.keys.values()]}

    @functools.cached_property
    def jwks_document(self) -> tuple[bytes, str]:
        """The JWKS as served and its strong ETag, serialised once per ring (a ring never
        changes; a rotation builds a new one), not once per request. Keys are listed by
        kid, so the tag depends on the set alone, not on the order rows were read in."""
        keys = sorted(self.jwks()["keys"], key=lambda jwk: str(jwk.get("kid")))
        body = json.dumps({"keys": keys}, separators=(",", ":"), sort_keys=True).encode()
        return body, strong_etag(body)

    @property
    def algorithms(self) -> list[str]:
        return [a for a in jose.ALGORITHMS if any(k.alg == a and k.state == ACTIVE for k in self.keys.values())]


class KeyCache:
    """Process-wide holder of the current KeyRing (one per Registry)."""

    def __init__(self, ttl: float = KEY_CACHE_SECONDS) -> None:
        self.ttl = ttl
        self._ring: KeyRing | None = None
        self._lock = threading.Lock()
        # When this process last compared the cached ring with the database (monotonic).
        self.checked_at = float("-inf")

    def get(self) -> KeyRing | None:
        ring = self._ring
        if ring is not None and time.monotonic() - ring.loaded_at < self.ttl:
            return ring
        return None

    def put(self, ring: KeyRing) -> None:
        with self._lock:
            self._ring = ring
            self.checked_at = time.monotonic()

    def invalidate(self) -> None:
        with self._lock:
            self._ring = None


class KeyService:
    # Several keys from day one: an active and a standby next ES256 key, and an active
    # EdDSA key for clients that register id_token_signed_response_alg=EdDSA.
    INITIAL = ((jose.DEFAULT_ALGORITHM, ACTIVE), (jose.DEFAULT_ALGORITHM, NEXT), ("EdDSA", ACTIVE))

    def __init__(
        self,
        *,
        store: KeyStore,
        kek: Kek,
        cache: KeyCache,
        sessionmaker: Any = None,
        audit: AuditService | None = None,
        upcoming_seconds: int = 24 * 60 * 60,
        rotation_days: int = 0,
        token_seconds: int = MAX_TOKEN_SECONDS,
        leeway_seconds: int = LEEWAY_SECONDS,
        clock: Callable[[], dt.datetime] = utcnow,
    ) -> None:
        self.store = store
        self.kek = kek
        self.cache = cache
        # For persisting transitions (and first-start keys) in their own committed
        # transaction, whatever the current request later does with its own.
        self.sessionmaker = sessionmaker
        self.audit = audit
        self.upcoming = dt.timedelta(seconds=upcoming_seconds)
        self.rotation_period = dt.timedelta(days=rotation_days) if rotation_days > 0 else None
        self.overlap = dt.timedelta(seconds=token_seconds + leeway_seconds)
        self.clock = clock
        self._checked = False  # fingerprint compared with the cached ring (once per service)
        self._wrote = False  # this service changed rows in its caller's uncommitted transaction

    def _twin(self, db: Session) -> KeyService:
        from idp.audit import AuditService

        return KeyService(
            store=SqlKeyStore(db), kek=self.kek, cache=self.cache, audit=AuditService(db=db) if self.audit else None,
            upcoming_seconds=int(self.upcoming.total_seconds()),
            rotation_days=self.rotation_period.days if self.rotation_period else 0,
            token_seconds=int(self.overlap.total_seconds()), leeway_seconds=0, clock=self.clock,
        )

    # ----------------------------------------------------------------- reading
    def ring(self, *, max_unchecked_seconds: float = 0.0) -> KeyRing:
        """The current ring. Verifying and publishing (the default) compare the cache with
        the database once per request, so an emergency retire counts at once. Signing
        passes ``SIGNING_CHECK_SECONDS``: the token endpoint then pays that query once
        every few seconds per process, not per request (issue 3's throughput), and a
        just-retired key signs for at most that long here, while every verifier here
        already refuses what it signs."""
        now = self.clock()
        if self._wrote:
            # Uncommitted changes of this transaction: used by it, never shared.
            return self._load(now, persist=False)
        ring = self.cache.get()
        if ring is not None and not self._checked and (
            time.monotonic() - self.cache.checked_at >= max_unchecked_seconds
        ):
            self._checked = True
            self.cache.checked_at = time.monotonic()
            if self.store.fingerprint() != ring.fingerprint:
                ring = None  # another process rotated or retired a key
        if ring is not None and ring.changes_at is not None and now >= ring.changes_at:
            ring = None
        if ring is None:
            ring = self._load(now, persist=True)
            self._checked = True
            self.cache.put(ring)
        return ring

    def _load(self, now: dt.datetime, *, persist: bool) -> KeyRing:
        rows = self.store.published()
        retry = False
        if persist and self._work_due(rows, now):
            initial = _signer([effective(r, now) for r in rows], jose.DEFAULT_ALGORITHM) is None
            if self._persist(now, initial=initial):
                rows = self.store.published()
            else:
                retry = True  # someone else holds the lock; the ring below is right anyway
        views = [effective(r, now) for r in rows]
        keys = {}
        for row, view in zip(rows, views, strict=True):
            if view.state == RETIRED:
                continue
            pem = self.kek.decrypt(row.private_key_encrypted, purpose=_PURPOSE + row.kid)
            keys[row.kid] = LoadedKey(
                kid=row.kid,
                alg=row.alg,
                state=view.state,
                activated_at=view.activated_at.timestamp() if view.activated_at else 0.0,
                private=jose.load_private(pem, kid=row.kid, alg=row.alg),
                public_jwk=dict(row.public_jwk),
            )
        moments = [m for m in self._moments(rows, views) if m > now]
        if retry:
            moments.append(now + _RETRY)
        return KeyRing(keys=keys, loaded_at=time.monotonic(), fingerprint=_fingerprint(rows),
                       changes_at=min(moments, default=None))

    def _rotation_due_at(self, views: list[KeyView], alg: str) -> dt.datetime | None:
        """When the schedule (``rotation_days``) wants a successor for ``alg``'s signer."""
        if self.rotation_period is None or any(v.alg == alg and v.upcoming for v in views):
            return None
        signer = _signer(views, alg)
        return None if signer is None else (signer.activated_at or signer.created_at) + self.rotation_period

    def _moments(self, rows: list[SigningKey], views: list[KeyView]) -> list[dt.datetime]:
        """Every stored or scheduled moment at which the ring changes, past or future."""
        moments = [m for r in rows for m in (r.activates_at, r.retire_at) if m is not None]
        moments += [m for alg in jose.ALGORITHMS if (m := self._rotation_due_at(views, alg)) is not None]
        return moments

    def _work_due(self, rows: list[SigningKey], now: dt.datetime) -> bool:
        views = [effective(r, now) for r in rows]
        return (
            _signer(views, jose.DEFAULT_ALGORITHM) is None
            or any(v.state != r.state for r, v in zip(rows, views, strict=True))
            or any(m is not None and m <= now for m in (self._rotation_due_at(views, a) for a in jose.ALGORITHMS))
        )

    def _persist(self, now: dt.datetime, *, initial: bool) -> bool:
        """Write what is due in a transaction of our own. False if another writer holds
        the lock (it is doing the same) or the database is busy: the effective ring does
        not depend on it, so it is tried again a moment later."""
        if self.sessionmaker is None:  # unit tests and tools: the caller commits
            self.advance(now=now)
            return True
        with self.sessionmaker() as db:
            own = self._twin(db)
            try:
                # First-start keys are needed to sign at all: worth waiting for.
                if not own.store.lock(wait=initial):
                    db.rollback()
                    return False
                own.advance(now=now)
                db.commit()
            except DBAPIError:
                db.rollback()
                return False
        return True

    def list(self) -> list[SigningKey]:
        return self.store.all()

    def describe(self, row: SigningKey) -> dict[str, Any]:
        """One key for people and for JSON (the CLI and the admin API)."""
        now = self.clock()
        view = effective(row, now)
        if view.state == ACTIVE:
            signer = _signer([effective(r, now) for r in self.store.published()], row.alg)
            role = "signing" if signer is not None and signer.kid == row.kid else "verifying"
        elif view.state == NEXT:
            role = "upcoming" if view.activates_at else "standby"
        else:
            role = "retired"

        def iso(moment: dt.datetime | None) -> str | None:
            return moment.isoformat() if moment else None

        return {
            "kid": row.kid, "alg": row.alg, "state": view.state, "role": role,
            "created_at": iso(row.created_at), "activates_at": iso(view.activates_at),
            "activated_at": iso(view.activated_at), "retire_at": iso(view.retire_at),
            "retired_at": iso(view.retired_at),
        }

    # ----------------------------------------------------------------- writing
    # Every write takes the key lock first (waiting for it), then re-reads and applies
    # whatever came due, so it acts on the current state whoever wrote it.
    def advance(self, *, now: dt.datetime | None = None) -> list[str]:
        """Persist the transitions that are due: first-start keys, activations, the end
        of overlaps, a scheduled rotation. Returns what happened; the caller commits."""
        now = now or self.clock()
        self.store.lock(wait=True)
        done: list[str] = []
        if self._ensure_initial(now):
            done.append("created the day-one keys")
        for row in self.store.published():
            if row.state == NEXT and row.activates_at is not None and row.activates_at <= now:
                row.state, row.activated_at = ACTIVE, row.activates_at
                self._record("key.activated", kid=row.kid, alg=row.alg, at=row.activates_at.isoformat())
                done.append(f"{row.kid} activated")
            if row.state == ACTIVE and row.retire_at is not None and row.retire_at <= now:
                row.state, row.retired_at = RETIRED, row.retire_at
                self._record("key.retired", kid=row.kid, alg=row.alg, reason="overlap ended",
                             at=row.retire_at.isoformat())
                done.append(f"{row.kid} retired")
        views = [effective(r, now) for r in self.store.published()]
        for alg in jose.ALGORITHMS:
            due = self._rotation_due_at(views, alg)
            if due is not None and due <= now:
                row = self._rotate(alg, now, reason="schedule")
                done.append(f"{row.kid} scheduled by IDP_KEY_ROTATION_DAYS")
        if done:
            self._mark_written()
        return done

    def ensure_initial_keys(self) -> bool:
        """Create the day-one keys when no default-algorithm key is active. True if created."""
        self.store.lock(wait=True)
        created = self._ensure_initial(self.clock())
        if created:
            self._mark_written()
        return created

    def _ensure_initial(self, now: dt.datetime) -> bool:
        rows = self.store.published()
        if _signer([effective(r, now) for r in rows], jose.DEFAULT_ALGORITHM) is not None:
            return False
        for alg, state in self.INITIAL:
            if not any(r.alg == alg and effective(r, now).state == state for r in rows):
                self._create(alg, state, now)
        return True

    def rotate(self, alg: str = jose.DEFAULT_ALGORITHM, *, ctx: RequestContext | None = None) -> SigningKey:
        """Schedule a new signing key for ``alg``: published now (or earlier), signing once
        it has been published for ``upcoming_seconds``. Returns that key; the caller commits."""
        if alg not in jose.ALGORITHMS:
            raise SigningKeyError(f"unsupported algorithm {alg!r}; choose one of {', '.join(jose.ALGORITHMS)}")
        now = self.clock()
        self.advance(now=now)
        return self._rotate(alg, now, reason="operator", ctx=ctx)

    def _rotate(self, alg: str, now: dt.datetime, *, reason: str, ctx: RequestContext | None = None) -> SigningKey:
        rows = [r for r in self.store.published() if r.alg == alg]
        pending = next((r for r in rows if r.state == NEXT and r.activates_at is not None), None)
        if pending is not None:
            # Rotating again would either cut the waiting time of the pending key or stack a
            # second one behind it; replacing it is a decision: retire it, then rotate.
            raise SigningKeyError(f"a rotation is already pending: {pending.kid} signs from"
                                  f" {pending.activates_at.isoformat()}; retire it first to replace it")
        standby = next((r for r in rows if r.state == NEXT), None)
        if standby is not None:
            # A standby (the day-one next key, or the one the last rotation left) has been
            # in the JWKS since it was created, so it may sign as soon as it has been
            # published for upcoming_seconds: at once if it is that old. That is what makes
            # an emergency rotation fast (rotate, then retire the suspect key) without
            # ever letting a key sign before relying parties can know it. A fresh standby
            # takes its place for the rotation after this one.
            chosen = standby
            chosen.activates_at = max(now, standby.created_at + self.upcoming)
            self._create(alg, NEXT, now)
        else:
            chosen = self._create(alg, NEXT, now)
            chosen.activates_at = now + self.upcoming
        if chosen.activates_at <= now:
            chosen.state, chosen.activated_at = ACTIVE, now
        self._schedule_retirements(alg, now)
        self._record("key.rotated", ctx=ctx, kid=chosen.kid, alg=alg, reason=reason,
                     activates_at=chosen.activates_at.isoformat())
        self._mark_written()
        return chosen

    def retire(self, kid: str, *, ctx: RequestContext | None = None) -> SigningKey:
        """The emergency path: the key leaves the JWKS now and tokens it signed stop
        verifying (introspection, userinfo) on every instance from their next request."""
        now = self.clock()
        self.advance(now=now)
        row = self.store.get(kid) if isinstance(kid, str) and 0 < len(kid) <= 64 else None
        if row is None:
            shown = repr(kid) if isinstance(kid, str) and len(kid) <= 64 else "with that id"
            raise SigningKeyError(f"no signing key {shown}")
        if row.state == RETIRED:
            return row
        if row.state == ACTIVE:
            others = [r for r in self.store.published()
                      if r.alg == row.alg and r.state == ACTIVE and r.kid != kid]
            if not others:
                pending = next((r for r in self.store.published() if r.alg == row.alg and r.state == NEXT
                                and r.activates_at is not None), None)
                when = f"; {pending.kid} signs from {pending.activates_at.isoformat()}" if pending else ""
                raise SigningKeyError(f"{kid} is the only active {row.alg} key; rotate first{when}")
        row.state, row.retired_at = RETIRED, now
        self._schedule_retirements(row.alg, now)
        self._record("key.retired", ctx=ctx, kid=row.kid, alg=row.alg, reason="operator")
        self._mark_written()
        return row

    def _schedule_retirements(self, alg: str, now: dt.datetime) -> None:
        """``retire_at`` of every key of ``alg`` from the order in which they sign: each
        stops when the next one activates and stays published for ``overlap`` more; the
        last (the one that signs, or will) has none. Recomputed after every change, so a
        retired successor gives the key before it its signing job and its life back."""
        signing = [r for r in self.store.published()
                   if r.alg == alg and (r.state == ACTIVE or (r.state == NEXT and r.activates_at is not None))]
        signing.sort(key=lambda r: r.activated_at if r.state == ACTIVE and r.activated_at else r.activates_at or now)
        for row, successor in zip(signing, signing[1:] + [None], strict=True):
            if successor is None:
                row.retire_at = None
            else:
                starts = successor.activated_at if successor.state == ACTIVE else successor.activates_at
                row.retire_at = (starts or now) + self.overlap

    def _create(self, alg: str, state: str, now: dt.datetime) -> SigningKey:
        generated = jose.generate(alg)
        row = SigningKey(
            kid=generated.kid,
            alg=alg,
            state=state,
            public_jwk=generated.public_jwk,
            private_key_encrypted=self.kek.encrypt(generated.private_pem, purpose=_PURPOSE + generated.kid),
            created_at=now,
            activated_at=now if state == ACTIVE else None,
        )
        self.store.add(row)
        return row

    def _record(self, event: str, *, ctx: RequestContext | None = None, **details: Any) -> None:
        if self.audit is not None:
            from idp.context import RequestContext

            self.audit.record(event, ctx=ctx or RequestContext.system(), **details)

    def _mark_written(self) -> None:
        self._wrote = not isinstance(self.store, MemoryKeyStore)
        self.cache.invalidate()


def ensure_keys_at_start(sessionmaker: Any, kek: Kek, cache: KeyCache) -> None:
    """First start: create the signing keys in their own transaction (before any request,
    so no request ever has to generate keys while holding other locks). Several workers
    starting at once wait for each other on the key lock: one creates, the others see
    it. A database that is not migrated yet is left alone: keys are then created on
    first use."""
    try:
        with sessionmaker() as db:
            if KeyService(store=SqlKeyStore(db), kek=kek, cache=cache).ensure_initial_keys():
                db.commit()
    except SQLAlchemyError:
        return
