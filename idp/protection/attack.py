"""Attack protection for the password step: three named rules, checked before argon2.

The attacker of this product (DESIGN.md) replays leaked email/password pairs from many
addresses. Each rule blocks *the attacker's* reach, never the account for its owner:

``ip_user.login``  10 consecutive failures for one account from one address (or from one
                   recognised device) refuse that address for that account only, until a
                   success there, a password reset, or ``ip_user_block_seconds`` of quiet.
``ip.stuffing``    an address that fails against many *distinct* accounts (the stuffing
                   signature) is throttled for every password sign-in: a leaky bucket of
                   ``ip_failure_capacity`` accounts draining one per ``ip_failure_regain_seconds``.
``user.login``     after ``account_failure_limit`` (NIST SP 800-63B-4 3.2.2: 100) consecutive
                   failures from anywhere, the password alone is not tried from an unrecognised
                   device: the owner proves the mailbox first (a mailed sign-in link).

Recognised devices (a signed cookie earned by a completed sign-in or a mailed link) are
exempt from ``ip.stuffing`` and ``user.login`` and counted per device, not per address,
for ``ip_user.login``: that is how an owner whose account is hammered from elsewhere,
or who shares a carrier NAT with the attacker, still signs in at the first try.

No Flask here: the view passes the facts in (idp/web/protection.py).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from idp.audit import AuditService
from idp.context import RequestContext
from idp.protection.counters import Counters
from idp.protection.metrics import Metrics

IP_USER = "ip_user.login"
IP_STUFFING = "ip.stuffing"
USER = "user.login"

# A distinct account counts once per address per day toward the stuffing signature.
_DISTINCT_WINDOW = 24 * 60 * 60


@dataclass(frozen=True, kw_only=True)
class Thresholds:
    ip_user_failures: int
    ip_user_block_seconds: int
    ip_capacity: int
    ip_regain_seconds: int
    account_failures: int
    account_window_seconds: int


@dataclass(kw_only=True)
class Attempt:
    """One password attempt: which account (by email, known or not), from where, on what."""

    account: str | None  # keyed hash of the normalised email; None when it was not an email
    ip: str
    device: str | None  # device id, only when the device is recognised for this account
    blocked_by: str | None = None

    @property
    def recognised(self) -> bool:
        return self.device is not None


class AttackProtection:
    def __init__(self, *, counters: Counters, metrics: Metrics, thresholds: Thresholds, key: bytes) -> None:
        self.counters = counters
        self.metrics = metrics
        self.t = thresholds
        self._key = key

    # ------------------------------------------------------------------ keys
    def account_key(self, email: str) -> str:
        """Emails never appear in counter keys (Redis is not the audit log)."""
        return hmac.new(self._key, email.encode(), hashlib.sha256).hexdigest()[:32]

    def _ip_user_key(self, attempt: Attempt) -> str:
        generation = self.counters.get(f"gen:{attempt.account}")
        source = f"dev:{attempt.device}" if attempt.device else f"ip:{attempt.ip}"
        return f"ipu:{attempt.account}:{generation}:{source}"

    # --------------------------------------------------------------- the rules
    def check(self, attempt: Attempt) -> str | None:
        """The rule that refuses this attempt before the password is tried, or None."""
        if attempt.account is not None and self.counters.get(self._ip_user_key(attempt)) >= self.t.ip_user_failures:
            attempt.blocked_by = IP_USER
        elif not attempt.recognised and self._bucket_full(
            self.counters.bucket_level(f"ipb:{attempt.ip}", regain_seconds=self.t.ip_regain_seconds)
        ):
            attempt.blocked_by = IP_STUFFING
        elif (
            not attempt.recognised
            and attempt.account is not None
            and self.counters.get(f"acc:{attempt.account}") >= self.t.account_failures
        ):
            attempt.blocked_by = USER
        return attempt.blocked_by

    def _bucket_full(self, level: float) -> bool:
        # The bucket drains continuously, so N failures a moment ago read as N - 0.001:
        # "full" means more than capacity - 1 units, i.e. the capacity-th recent failure.
        return level > self.t.ip_capacity - 1

    def record_failure(
        self, attempt: Attempt, *, audit: AuditService, ctx: RequestContext, user_id: str | None
    ) -> None:
        """A wrong password, an unknown account, or a refused attempt: every rule counts it.

        Refused attempts count too, so a block lasts as long as the hammering does.
        """
        if attempt.blocked_by is None:
            self.metrics.inc("idp_signin_failures_total")
        else:
            self.metrics.inc("idp_signin_blocked_total", rule=attempt.blocked_by)
        if attempt.account is not None:
            failures = self.counters.incr(self._ip_user_key(attempt), ttl=self.t.ip_user_block_seconds)
            if failures == self.t.ip_user_failures:
                self._triggered(IP_USER, audit=audit, ctx=ctx, user_id=user_id, source=attempt.device and "device")
            if self.counters.add_once(f"ipseen:{attempt.ip}:{attempt.account}", ttl=_DISTINCT_WINDOW):
                level = self.counters.bucket_add(f"ipb:{attempt.ip}", regain_seconds=self.t.ip_regain_seconds)
                if self._bucket_full(level) and not self._bucket_full(level - 1):
                    self._triggered(IP_STUFFING, audit=audit, ctx=ctx, user_id=None, level=round(level, 2))
            total = self.counters.incr(f"acc:{attempt.account}", ttl=self.t.account_window_seconds)
            if total == self.t.account_failures:
                self._triggered(USER, audit=audit, ctx=ctx, user_id=user_id)

    def record_success(self, attempt: Attempt) -> None:
        """The password was right here: this source's streak ends, and (NIST: consecutive
        failures) so does the account's."""
        if attempt.account is not None:
            self.counters.delete(self._ip_user_key(attempt), f"acc:{attempt.account}")

    def mailbox_proven(self, email: str, *, ip: str) -> None:
        """A mailed link was used from ``ip``: the owner is here; clear this address's block."""
        account = self.account_key(email)
        self.record_success(Attempt(account=account, ip=ip, device=None))

    def account_reset(self, email: str) -> None:
        """A password reset (or operator unlock): every address's block for the account ends."""
        account = self.account_key(email)
        self.counters.incr(f"gen:{account}", ttl=self.t.ip_user_block_seconds + 60)
        self.counters.delete(f"acc:{account}")

    def _triggered(
        self, rule: str, *, audit: AuditService, ctx: RequestContext, user_id: str | None, **details: object
    ) -> None:
        self.metrics.inc("idp_protection_triggered_total", rule=rule)
        audit.record("protection.triggered", ctx=ctx, user_id=user_id, rule=rule, **details)
