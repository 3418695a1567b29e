"""Named rate limits (flask-limiter), applied centrally by endpoint name.

Other components do not decorate their views: ``LIMITS`` maps endpoint-name patterns to
named limits, and ``init_app`` (called last in create_app) wraps every matching view
with one flask-limiter ``shared_limit`` per name, keyed by the client address
(idp.web.requests.client_ip); the machine endpoints' limits (``api=True``) are counted by
``ApiLimit`` with the same strategy, storage and keys, minus the decorator's overhead.
The first pattern that matches wins. Only POSTs count:
pages shown by GET cost nothing worth limiting, and a form shown is not an attempt.

Storage: ``memory://`` when ``redis_url`` is None, else Redis under
``<redis_prefix>:rl``. A breach answers 429 with ``Retry-After`` and a page a person
can act on (JSON for API routes).

Failure mode when Redis is away (written decision, STYLE habit 10): every named limit
*fails over to process memory* (flask-limiter's in-memory fallback, inheriting the same
limits; Redis is retried with back-off). Not closed: a Redis outage must not become a
sign-in outage that anyone able to disturb Redis could trigger. Not open: per-process
limits still bound each instance, so the worst case during an outage is N instances
times the budget, and the attack-protection rules (idp/protection/counters.py) keep
working the same way.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from flask_limiter import Limiter, RateLimitExceeded
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

from idp.web.errors import render_error
from idp.web.requests import client_ip


@dataclass(frozen=True)
class NamedLimit:
    name: str  # dotted lower-case, the scope in storage and the metric label
    setting: str  # the Settings attribute (IDP_<UPPER>) holding its value
    api: bool = False  # callers are programs: answer in JSON
    message: str = "Too many attempts from your network."


LOGIN = NamedLimit("ip.login", "rate_limit_login", message="Too many sign-in attempts from your network.")
MFA = NamedLimit("ip.mfa", "rate_limit_mfa", message="Too many codes entered from your network.")
SIGNUP = NamedLimit("ip.signup", "rate_limit_signup", message="Too many sign-ups from your network.")
RESET = NamedLimit("ip.reset", "rate_limit_reset", message="Too many password reset requests from your network.")
SIGNIN_LINK = NamedLimit("ip.signin_link", "rate_limit_signin_link", message="Too many sign-in links requested.")
TOKEN = NamedLimit("ip.token", "rate_limit_token", api=True)
INTROSPECTION = NamedLimit("ip.introspection", "rate_limit_introspection", api=True)
FACTOR = NamedLimit("ip.factor", "rate_limit_factor", message="Too many security keys or apps added from here.")

# Endpoint-name patterns (fnmatch, case-sensitive), first match wins. Names owned by
# other components are matched by pattern because they are built alongside this one:
# a new mfa.* view is a code-entry view unless its name says it registers a factor.
LIMITS: tuple[tuple[str, NamedLimit], ...] = (
    # Admin API first: its "force_reset" must not fall under the person-facing reset limit.
    ("admin.*", TOKEN),
    ("email_change.*", RESET),  # mails a link to an address someone typed, like a reset
    ("auth.login", LOGIN),
    ("mfa.passkey_signin*", LOGIN),  # usernameless passkey sign-in is a sign-in
    ("protection.link_request", SIGNIN_LINK),
    ("protection.new_device_send_link", SIGNIN_LINK),
    ("password.change", LOGIN),  # verifies the current password: argon2, like a sign-in
    ("signup.register", SIGNUP),
    ("*.reset*", RESET),
    ("*.forgot*", RESET),
    ("reset.*", RESET),
    ("mfa.*enrol*", FACTOR),
    ("mfa.*regist*", FACTOR),
    ("mfa.*add*", FACTOR),
    ("mfa.*setup*", FACTOR),
    ("mfa.*_new*", FACTOR),
    ("account.*totp*", FACTOR),
    ("account.*passkey*", FACTOR),
    ("mfa.*", MFA),
    ("*introspect*", INTROSPECTION),
    ("*.token", TOKEN),
    ("*.token_endpoint", TOKEN),
    ("*.revoke*", TOKEN),
    ("*.revocation*", TOKEN),
)

METHODS = ["POST"]


def limit_for(endpoint: str) -> NamedLimit | None:
    for pattern, named in LIMITS:
        if fnmatchcase(endpoint, pattern):
            return named
    return None


def _key() -> str:
    return client_ip() or "unknown"


STRATEGY = "sliding-window-counter"  # flask-limiter's name for SlidingWindowCounterRateLimiter
# After Redis failed, API limits count in process memory for this long before trying it
# again, doubling while it keeps failing (a dead Redis must not cost every request a
# connection timeout).
RETRY_REDIS_SECONDS = (1.0, 60.0)
log = logging.getLogger(__name__)


class ApiLimit:
    """One named limit on the machine endpoints (token, introspection, revocation, admin
    API), checked with the ``limits`` strategy directly instead of flask-limiter's view
    decorator.

    Why: these endpoints are the provider's hot path (issue 3 measures them), and the
    decorator's per-request work (resolving the view's limits, exemption scopes, request
    context bookkeeping) cost about a tenth of a client_credentials request's CPU to find
    the one limit known here at start-up. The counting is unchanged: same strategy, same
    storage, same keys (``item.key_for(address, name)``, as flask-limiter builds them), so
    the limit means exactly what it did. Redis failure: the module's written decision, with
    this object's own in-memory fallback and back-off.
    """

    def __init__(self, named: NamedLimit, value: str, storage: Any) -> None:
        self.named = named
        self.items: list[RateLimitItem] = sorted(parse_many(value))
        self._shared = SlidingWindowCounterRateLimiter(storage)
        # Where counting goes while Redis is down; without Redis, the storage itself.
        self._fallback = (
            self._shared if isinstance(storage, MemoryStorage) else SlidingWindowCounterRateLimiter(MemoryStorage())
        )
        self._down_until = 0.0
        self._backoff = RETRY_REDIS_SECONDS[0]
        self._lock = threading.Lock()

    def _strategy(self) -> SlidingWindowCounterRateLimiter:
        return self._fallback if time.monotonic() < self._down_until else self._shared

    def _storage_failed(self, error: Exception) -> None:
        with self._lock:
            self._down_until = time.monotonic() + self._backoff
            log.warning("rate limit storage unreachable (%s): %s counts in process memory for %.0f s",
                        type(error).__name__, self.named.name, self._backoff)
            self._backoff = min(self._backoff * 2, RETRY_REDIS_SECONDS[1])

    def hit(self, key: str) -> float | None:
        """Count one request; None when allowed, else when (epoch seconds) it may retry."""
        strategy = self._strategy()
        if strategy is self._fallback:
            return self._hit(strategy, key)  # process memory does not fail over
        try:
            result = self._hit(strategy, key)
        except Exception as error:  # noqa: BLE001 - any storage failure: fail over, never open
            self._storage_failed(error)
            return self._hit(self._fallback, key)
        self._backoff = RETRY_REDIS_SECONDS[0]  # Redis answers: a later failure backs off from the start
        return result

    def _hit(self, strategy: SlidingWindowCounterRateLimiter, key: str) -> float | None:
        for item in self.items:
            if not strategy.hit(item, key, self.named.name):
                return strategy.get_window_stats(item, key, self.named.name).reset_time
        return None

    def guard(self, view: Callable[..., Any], on_breach: Callable[[NamedLimit, float], Response]) -> Callable[..., Any]:
        @functools.wraps(view)
        def limited(*args: Any, **kwargs: Any) -> Any:
            if request.method in METHODS:
                reset_at = self.hit(_key())
                if reset_at is not None:
                    return on_breach(self.named, reset_at)
            return view(*args, **kwargs)

        return limited


def _check_only_in_decorators(app: Flask, limiter: Limiter) -> None:
    """Drop flask-limiter's own before/after-request hooks.

    Every limit here is a ``shared_limit`` wrapped around a view (below); there are no
    default, application-wide or blueprint limits. The before-request hook would resolve
    and filter the limits of every request a second time (it was about a fifth of the
    CPU of a token request, issue 3) only to find nothing to check, and the after-request
    hook only adds headers, which are disabled. The teardown hook only resets the
    limiter's per-request context, which lives on Flask's request context and dies with
    it; it built that context for every request just to reset it (issue 3), so it goes too.
    """
    check = limiter._check_request_limit
    before = app.before_request_funcs.get(None, [])
    after = app.after_request_funcs.get(None, [])
    app.before_request_funcs[None] = [f for f in before if f != check]
    app.after_request_funcs[None] = [
        f for f in after if not (isinstance(f, functools.partial) and f.args == (limiter,))
    ]
    teardown = app.teardown_request_funcs.get(None, [])
    app.teardown_request_funcs[None] = [f for f in teardown if getattr(f, "__self__", None) is not limiter]
    if (len(app.before_request_funcs[None]) != len(before) - 1 or len(app.after_request_funcs[None]) != len(after) - 1
            or len(app.teardown_request_funcs[None]) != len(teardown) - 1):
        raise RuntimeError("flask-limiter's request hooks were not where expected; check its version")


def init_app(app: Flask) -> None:
    registry = app.extensions["idp"]
    s = registry.settings
    if s.redis_url is None:
        storage_uri, options = "memory://", {}
    else:
        storage_uri = s.redis_url
        options = {"key_prefix": f"{s.redis_prefix}:rl", "socket_timeout": 0.5, "socket_connect_timeout": 0.5}
    limiter = Limiter(
        key_func=_key,
        storage_uri=storage_uri,
        storage_options=options,  # type: ignore[arg-type]
        strategy=STRATEGY,
        in_memory_fallback_enabled=True,  # the fail-over decision in the module docstring
        headers_enabled=False,  # Retry-After is set on the 429 below; no per-response chatter
    )
    limiter.init_app(app)
    _check_only_in_decorators(app, limiter)
    applied: dict[str, str] = {}
    lock = threading.Lock()

    by_name = {named.name: named for _, named in LIMITS}

    def _breached(scope: str, reset_at: float) -> int:
        registry.protection.metrics.inc("idp_rate_limited_total", limit=scope or "unknown")
        current_app.logger.info("rate limit %s reached by %s", scope, _key())
        return max(1, math.ceil(reset_at - time.time()))

    def _api_breach(named: NamedLimit, reset_at: float) -> Response:
        retry_after = _breached(named.name, reset_at)
        response = jsonify(error="rate_limited", error_description="Too many requests; retry later.")
        response.status_code = 429
        response.headers["Retry-After"] = str(retry_after)
        return response

    api_limits: dict[str, ApiLimit] = {}  # one per name: shared by the views it covers

    def apply(endpoint: str) -> None:
        named = limit_for(endpoint)
        if named is None or endpoint in applied:
            return
        view = app.view_functions[endpoint]
        value = getattr(s, named.setting)
        if named.api:
            if named.name not in api_limits:
                api_limits[named.name] = ApiLimit(named, value, limiter.storage)
            app.view_functions[endpoint] = api_limits[named.name].guard(view, _api_breach)
        else:
            app.view_functions[endpoint] = limiter.shared_limit(value, scope=named.name, methods=METHODS)(view)
        applied[endpoint] = named.name

    for endpoint in list(app.view_functions):
        apply(endpoint)
    app.extensions["rate_limits"] = {"limiter": limiter, "applied": applied}

    unlimited: set[str] = set()  # endpoints no pattern matches: not matched again per request

    @app.before_request
    def _late_registrations() -> None:
        # A view registered after init_app (create_app edited out of order) is limited
        # at its first request rather than never; dispatch reads view_functions after this.
        endpoint = request.endpoint
        if not endpoint or endpoint in applied or endpoint in unlimited:
            return
        if limit_for(endpoint) is None:
            unlimited.add(endpoint)
        else:
            with lock:
                if endpoint not in applied:
                    current_app.logger.error("rate limit applied late to %s: call protection.init_app last", endpoint)
                    apply(endpoint)

    @app.errorhandler(RateLimitExceeded)
    def _too_many(error: RateLimitExceeded):  # type: ignore[no-untyped-def]
        # Page limits only: API limits answer in JSON from ApiLimit.guard (_api_breach).
        scope = error.limit.scope if isinstance(error.limit.scope, str) else ""
        named = by_name.get(scope)
        current = limiter.current_limit
        retry_after = _breached(scope, current.reset_at if current is not None else time.time() + 60)
        headers = {"Retry-After": str(retry_after)}
        wait = f"{retry_after} seconds" if retry_after < 120 else f"{math.ceil(retry_after / 60)} minutes"
        message = (named.message if named else "Too many attempts.") + f" Wait {wait}, then try again."
        return render_error(429, "too_many_requests", message, headers)
