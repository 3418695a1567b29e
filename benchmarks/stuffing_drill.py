"""Credential-stuffing drill (issue 6): a leaked list replayed from many addresses while
the real users sign in from their own devices. One command (benchmarks/README.md):

    .venv/bin/python benchmarks/stuffing_drill.py --policy both --storage both

For each (MFA policy, counter storage) it:
1. creates a fresh database (SQLite for ``memory``; PostgreSQL for ``redis``, the
   scale-out shape) and runs ``idp db upgrade``;
2. seeds ``--users`` accounts through the real account service with production argon2
   parameters; a ``--reuse`` share of them use, here, the very password of the "leaked
   list" (a leak from another site: random passphrases, NOT in the breached corpus);
   under ``required`` every account has a TOTP authenticator;
3. starts ``idp serve`` (one worker for memory; two sharing Redis otherwise),
   trusting no proxy, so the socket address is the client address;
4. gives ``--legit`` users their own address (127.0.0.200 and up) and a recognised
   device (through the mailed sign-in link, as a person would);
5. replays the list ``--passes`` times from ``--attackers`` addresses (127.0.0.2 and up,
   each attempt a fresh cookie-less client, as bots are) while the legit users sign in
   ``--legit-signins`` times each, ``--interval`` seconds apart (a TOTP code is single use
   per 30 s step);
6. reports: accounts taken over (an attacker reached /account), attacker attempts whose
   password was actually tried (from the audit log, by address), refusals by rule and
   429s, legit first-try success rate and legit p50/p99 latency of the password step.

``--gate wired`` serves an app whose before_request calls the new-device seam
(idp.web.protection.new_device_redirect), i.e. what ``sso.login_required`` gives once the
MFA issue wires it; ``--gate as-built`` (default) serves create_app() unchanged.
Only loopback addresses are used; every loop is bounded by the list size.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import json
import os
import platform
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pyotp

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
WORDS = ("amber", "bison", "cedar", "delta", "ember", "fjord", "gecko", "harbor", "indigo", "juniper", "koala",
         "lumen", "maple", "nectar", "onyx", "pepper", "quartz", "raven", "saffron", "tundra", "umber", "velvet",
         "walnut", "xenon", "yarrow", "zephyr")


def passphrase(rng: random.Random) -> str:
    # Four random words and a number: long, unique to this drill, never in any breach list.
    return "-".join(rng.choice(WORDS) for _ in range(4)) + f"-{rng.randrange(10**6):06d}"


@dataclass
class Account:
    email: str
    password: str
    leaked_password: str
    reuses: bool
    totp_secret: str | None = None


@dataclass
class Result:
    policy: str
    storage: str
    gate: str
    attempts: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    takeovers: set[str] = field(default_factory=set)
    legit_ok: int = 0
    legit_total: int = 0
    legit_latency: list[float] = field(default_factory=list)
    legit_failures: list[str] = field(default_factory=list)
    audit: dict[str, int] = field(default_factory=dict)
    reusing: int = 0
    seconds: float = 0.0


# --------------------------------------------------------------------- setup
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_database(storage: str, workdir: Path, postgres_url: str) -> tuple[str, str | None]:
    if storage == "memory":
        return f"sqlite:///{workdir / 'idp.sqlite3'}", None
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"idp_drill_{secrets.token_hex(4)}"
    admin = create_engine(make_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(postgres_url).set(database=name).render_as_string(hide_password=False), name


def drop_database(postgres_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(make_url(postgres_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(env: dict[str, str], accounts: list[Account], *, with_totp: bool) -> None:
    """Create the accounts through the real services (argon2 in threads: it drops the GIL)."""
    from idp.registry import Registry
    from idp.settings import Settings

    registry = Registry.build(Settings.from_env(env))

    def create(account: Account) -> None:
        with registry.sessionmaker() as db:
            services = registry.services(db)
            user = services.accounts.create_by_operator(account.email, account.password, verified=True)
            if with_totp:
                record = services.totp.begin(user)
                account.totp_secret = services.totp.secret(record)
                services.totp.confirm(user, record.id, pyotp.TOTP(account.totp_secret).now(), name="phone")
            db.commit()

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        list(pool.map(create, accounts))
    registry.engine.dispose()


# The app factory the server's workers import (a module file next to the log, on PYTHONPATH).
WIRED_APP = """
def application():
    from idp import create_app
    from idp.web import protection
    app = create_app()
    app.before_request(protection.new_device_redirect)
    return app
"""
WIRED_SERVER = """
import sys
from idp.server import run
from idp.settings import Settings
run(Settings.from_env(), host="127.0.0.1", port=int(sys.argv[1]), workers=int(sys.argv[2]), threads=16,
    app_factory="idp_drill_wired:application")
"""


def start_server(env: dict[str, str], port: int, *, workers: int, gate: str, log: Path) -> subprocess.Popen[bytes]:
    if gate == "wired":
        (log.parent / "idp_drill_wired.py").write_text(WIRED_APP)
        env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(log.parent), env.get("PYTHONPATH")]))}
        cmd = [PYTHON, "-c", WIRED_SERVER, str(port), str(workers)]
    else:
        cmd = [str(ROOT / ".venv/bin/idp"), "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers), "--threads", "16"]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"server exited early; see {log}")
        time.sleep(0.3)
    raise SystemExit(f"server did not start; see {log}")


def client(base: str, ip: str) -> httpx.Client:
    return httpx.Client(base_url=base, transport=httpx.HTTPTransport(local_address=ip), timeout=60,
                        headers={"User-Agent": "Mozilla/5.0 (drill) Firefox/128.0"})


def csrf(c: httpx.Client, path: str) -> str:
    page = c.get(path)
    match = CSRF_RE.search(page.text)
    if match is None:
        raise RuntimeError(f"no CSRF token on {path} ({page.status_code})")
    return match.group(1)


def last_link(outbox: Path, to: str, path: str, *, newer_than: float = 0.0, wait: float = 10.0) -> str:
    """The newest link to ``path`` mailed to ``to`` after ``newer_than`` (a file mtime).
    The provider mails after answering, so the file may land a moment later: wait."""
    deadline = time.monotonic() + wait
    while True:
        for eml in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True):
            if eml.stat().st_mtime < newer_than:
                break
            message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
            if message["To"] != to:
                continue
            body = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
            found = re.findall(r"https?://\S+" + re.escape(path) + r"\S*", body)
            if found:
                return str(found[-1])
        if time.monotonic() >= deadline:
            raise RuntimeError(f"no {path} link mailed to {to}")
        time.sleep(0.05)


def recognise_device(c: httpx.Client, account: Account, outbox: Path, issuer: str) -> None:
    asked = time.time() - 1.0  # file times are coarse on some filesystems
    c.post("/login/link", data={"csrf_token": csrf(c, "/login/link"), "username": account.email})
    link = last_link(outbox, account.email, "/login/link/confirm", newer_than=asked).removeprefix(issuer)
    token = link.split("token=", 1)[1]
    response = c.post("/login/link/confirm", data={"csrf_token": csrf(c, link), "token": token})
    if response.status_code != 302:
        raise RuntimeError(f"link confirm failed for {account.email}: {response.status_code}")


def finish_sign_in(c: httpx.Client, response: httpx.Response, account: Account | None) -> bool:
    """Follow the sign-in to its end; True when /account shows the account. A legit user
    (``account`` given) answers the TOTP step; an attacker has nothing to answer with."""
    for _ in range(6):
        if response.status_code != 302:
            break
        location = response.headers["Location"]
        response = c.get(location)
        if response.status_code == 200 and 'name="code"' in response.text and account and account.totp_secret:
            action = re.search(r'<form method="post" action="([^"]+)"', response.text)
            token = CSRF_RE.search(response.text)
            assert action and token
            response = c.post(action.group(1).replace("&amp;", "&"), data={
                "csrf_token": token.group(1), "method": "totp", "next": "/account", "acr": "", "max_age": "",
                "fresh": "", "code": pyotp.TOTP(account.totp_secret).now(),
            })
    return response.status_code == 200 and response.url.path == "/account"


# ------------------------------------------------------------------- phases
def attack(base: str, leaked: list[tuple[str, str]], reusing: set[str], attackers: list[str], threads: int,
           result: Result, lock: threading.Lock) -> None:
    def one(i_entry: tuple[int, tuple[str, str]]) -> None:
        i, (address, password) = i_entry
        ip = attackers[i % len(attackers)]
        with client(base, ip) as c:
            try:
                response = c.post("/login", data={"csrf_token": csrf(c, "/login"), "username": address,
                                                  "password": password})
            except RuntimeError:  # the GET itself was refused (429 page has no form)
                with lock:
                    result.attempts += 1
                    result.statuses["429-get"] = result.statuses.get("429-get", 0) + 1
                return
            status = str(response.status_code)
            took_over = response.status_code == 302 and finish_sign_in(c, response, None)
        with lock:
            result.attempts += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if took_over and address in reusing:
                result.takeovers.add(address)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, enumerate(leaked)))


def legit(base: str, users: list[tuple[Account, httpx.Client]], signins: int, interval: float, result: Result,
          lock: threading.Lock, stop: threading.Event) -> None:
    def person(pair: tuple[Account, httpx.Client]) -> None:
        account, c = pair
        for n in range(signins):
            if n:
                stop.wait(interval)
            c.cookies.delete("idp_sso")
            start = time.perf_counter()
            response = c.post("/login", data={"csrf_token": csrf(c, "/login"), "username": account.email,
                                              "password": account.password})
            latency = time.perf_counter() - start
            ok = response.status_code == 302 and finish_sign_in(c, response, account)
            with lock:
                result.legit_total += 1
                result.legit_latency.append(latency)
                if ok:
                    result.legit_ok += 1
                else:
                    result.legit_failures.append(f"{account.email}: {response.status_code}")

    with ThreadPoolExecutor(max_workers=len(users)) as pool:
        list(pool.map(person, users))


def audit_counts(database_url: str, attackers: list[str]) -> dict[str, int]:
    from sqlalchemy import create_engine, func, select

    from idp.models import AuditEvent

    engine = create_engine(database_url)
    counts: dict[str, int] = {}
    with engine.connect() as conn:
        for event, n in conn.execute(
            select(AuditEvent.event, func.count()).where(AuditEvent.ip.in_(attackers)).group_by(AuditEvent.event)
        ):
            counts[event] = n
        for details, in conn.execute(
            select(AuditEvent.details).where(AuditEvent.event.in_(["signin.blocked", "protection.triggered"]),
                                             AuditEvent.ip.in_(attackers))
        ):
            key = f"rule:{details.get('rule')}"
            counts[key] = counts.get(key, 0) + 1
    engine.dispose()
    return counts


def run_one(policy: str, storage: str, args: argparse.Namespace) -> Result:
    rng = random.Random(args.seed)
    result = Result(policy=policy, storage=storage, gate=args.gate)
    with tempfile.TemporaryDirectory(prefix="idp-drill-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        issuer = f"http://localhost:{port}"
        database_url, pg_name = make_database(storage, workdir, args.postgres_url)
        prefix = f"idp-drill-{secrets.token_hex(4)}"
        env = {**os.environ, "IDP_ENV": "development", "IDP_ISSUER": issuer, "IDP_DATABASE_URL": database_url,
               "IDP_KEYS_DIR": str(workdir / "keys"), "IDP_MAIL_OUTBOX": str(workdir / "outbox"),
               "IDP_MFA_POLICY": policy, "IDP_REDIS_PREFIX": prefix}
        env.pop("IDP_TRUSTED_PROXIES", None)
        env.pop("IDP_REDIS_URL", None)
        if storage == "redis":
            env["IDP_REDIS_URL"] = args.redis_url
        proc = None
        try:
            subprocess.run([str(ROOT / ".venv/bin/idp"), "db", "upgrade"], env=env, check=True, cwd=ROOT,
                           capture_output=True)
            accounts = []
            for n in range(args.users):
                leaked_pw = passphrase(rng)
                reuses = rng.random() < args.reuse
                accounts.append(Account(email=f"shopper{n:05d}@example.com", leaked_password=leaked_pw,
                                        password=leaked_pw if reuses else passphrase(rng), reuses=reuses))
            t0 = time.time()
            seed(env, accounts, with_totp=policy == "required")
            print(f"  seeded {len(accounts)} accounts in {time.time() - t0:.0f}s", flush=True)
            reusing = {a.email for a in accounts if a.reuses}
            result.reusing = len(reusing)
            leaked = [(a.email, a.leaked_password) for a in accounts]
            leaked += [(f"stranger{n:05d}@example.net", passphrase(rng)) for n in range(args.unknown)]
            leaked = [entry for _ in range(args.passes) for entry in rng.sample(leaked, len(leaked))]

            proc = start_server(env, port, workers=1 if storage == "memory" else 2, gate=args.gate,
                                log=workdir / "server.log")
            base = f"http://127.0.0.1:{port}"
            attackers = [f"127.0.0.{2 + i}" for i in range(args.attackers)]
            people = rng.sample(accounts, args.legit)
            clients = []
            for i, account in enumerate(people):
                c = client(base, f"127.0.0.{200 + i}")
                recognise_device(c, account, workdir / "outbox", issuer)
                clients.append((account, c))
            print(f"  {len(clients)} legit devices recognised; attack starts", flush=True)

            if policy == "required":
                # Seeding spent each authenticator's current code (single use per step).
                time.sleep(31 - time.time() % 30)
            lock, stop = threading.Lock(), threading.Event()
            started = time.time()
            legit_thread = threading.Thread(target=legit, args=(base, clients, args.legit_signins, args.interval,
                                                                 result, lock, stop))
            legit_thread.start()
            attack(base, leaked, reusing, attackers, args.threads, result, lock)
            legit_thread.join()
            result.seconds = time.time() - started
            for _, c in clients:
                c.close()
            result.audit = audit_counts(database_url, attackers)
        except Exception:
            log = workdir / "server.log"
            if log.exists():  # the provider's side of the failure, before the folder goes
                print("".join(log.read_text(errors="replace").splitlines(True)[-60:]), file=sys.stderr)
            raise
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            if storage == "redis":
                import redis

                r = redis.Redis.from_url(args.redis_url)
                for key in r.scan_iter(match=f"{prefix}:*", count=1000):
                    r.delete(key)
            if pg_name:
                drop_database(args.postgres_url, pg_name)
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: list[Result], args: argparse.Namespace) -> str:
    lines = [
        f"Machine: {platform.node()}, {os.cpu_count()} CPU ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}; date {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"Command: `{' '.join(['.venv/bin/python', 'benchmarks/stuffing_drill.py', *sys.argv[1:]])}`",
        f"List: {args.users} accounts ({args.reuse:.0%} reuse the leaked password), {args.unknown} unknown "
        f"addresses, {args.passes} passes, from {args.attackers} addresses, {args.threads} attacker threads; "
        f"{args.legit} legit users x {args.legit_signins} sign-ins, {args.interval:.0f}s apart.",
        "",
        "| policy | storage | gate | attacker attempts | passwords tried | refused by rule | 429 | "
        "correct passwords found | takeovers (of reusing) | legit first-try success | legit p50 / p99 (s) | run (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        tried = r.audit.get("signin.failed", 0) + r.audit.get("signin.password_ok", 0)
        refused = r.audit.get("signin.blocked", 0)
        rules = ", ".join(f"{k[5:]} {v}" for k, v in sorted(r.audit.items()) if k.startswith("rule:"))
        too_many = r.statuses.get("429", 0) + r.statuses.get("429-get", 0)
        lines.append(
            f"| {r.policy} | {r.storage} | {r.gate} | {r.attempts} | {tried} | {refused} ({rules or 'none'}) | "
            f"{too_many} | {r.audit.get('signin.password_ok', 0)} | {len(r.takeovers)} / {r.reusing} "
            f"({len(r.takeovers) / max(r.reusing, 1):.1%}) | {r.legit_ok} / {r.legit_total} "
            f"({r.legit_ok / max(r.legit_total, 1):.1%}) | {pct(r.legit_latency, 0.5):.3f} / "
            f"{pct(r.legit_latency, 0.99):.3f} | {r.seconds:.0f} |"
        )
    for r in results:
        if r.legit_failures:
            lines.append(f"\nLegit failures ({r.policy}/{r.storage}): {r.legit_failures[:10]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", choices=("required", "optional", "both"), default="both")
    parser.add_argument("--storage", choices=("memory", "redis", "both"), default="both")
    parser.add_argument("--gate", choices=("as-built", "wired"), default="as-built")
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--reuse", type=float, default=0.3)
    parser.add_argument("--unknown", type=int, default=600)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--attackers", type=int, default=150, help="addresses 127.0.0.2 and up (max 198)")
    parser.add_argument("--threads", type=int, default=12)
    parser.add_argument("--legit", type=int, default=40, help="users at 127.0.0.200 and up (max 55)")
    parser.add_argument("--legit-signins", type=int, default=3)
    parser.add_argument("--interval", type=float, default=31.0)
    parser.add_argument("--seed", type=int, default=6)
    parser.add_argument("--redis-url", default=os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--postgres-url",
                        default=os.environ.get("IDP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"))
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    args = parser.parse_args()
    if not 1 <= args.attackers <= 198 or not 1 <= args.legit <= 55:
        parser.error("--attackers must be 1..198 and --legit 1..55 (loopback 127.0.0.2-254)")
    policies = ("required", "optional") if args.policy == "both" else (args.policy,)
    storages = ("memory", "redis") if args.storage == "both" else (args.storage,)
    results = []
    for policy in policies:
        for storage in storages:
            print(f"drill: policy={policy} storage={storage} gate={args.gate}", flush=True)
            results.append(run_one(policy, storage, args))
            print(report(results[-1:], args).splitlines()[-1], flush=True)
    text = report(results, args)
    print("\n" + text)
    if args.json:
        args.json.write_text(json.dumps([{**r.__dict__, "takeovers": sorted(r.takeovers)} for r in results],
                                        indent=2, default=str))


if __name__ == "__main__":
    main()
