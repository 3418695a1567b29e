"""Local access-token verification (idp.rp, warm JWKS cache) against one introspection
round trip to a running provider (issue 8, Done-when 3).

One command (benchmarks/README.md):

    .venv/bin/python benchmarks/rp_verify_bench.py

It creates a fresh embedded provider in a temporary folder (SQLite, file outbox; or
with ``--backend postgresql`` a fresh PostgreSQL database, dropped at the end, and Redis), registers a
client_credentials client with ``idp clients create``, starts the real ``idp serve``
(Granian) on loopback and takes one access token from /token. Then, in rounds that
interleave the three so that the machine's noise hits them alike, it times each call:

- ``local``: ``TokenValidator.validate(token)``: signature (ES256) and claims, keys
  from the warm ``JwksCache`` (the bench asserts no JWKS fetch happens while measuring);
- ``introspect``: ``validate(token, introspect=True)``: the same local checks, then
  ``Introspector``'s RFC 7662 POST (urllib, a new TCP connection per call, which is
  what idp.rp does);
- ``introspect, keep-alive``: the same POST on one persistent ``http.client`` connection,
  to show what the provider itself costs without connection set-up.

The provider's introspection rate limit is raised for the run (IDP_RATE_LIMIT_INTROSPECTION)
so it is still evaluated on every request but never answers 429. Prints a Markdown
table of medians (and p10/p90) over all calls, the ratio, and the machine.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import http.client
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from idp.rp import TokenValidator  # noqa: E402

IDP = str(ROOT / ".venv/bin/idp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()),
        "cpu": model,
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def start_provider(env: dict[str, str], port: int, workers: int, log: Path) -> subprocess.Popen[bytes]:
    cmd = [IDP, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=ROOT,
                            start_new_session=True)
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"the provider exited early; see {log}")
        time.sleep(0.3)
    raise SystemExit(f"the provider did not start; see {log}")


def access_token(issuer: str, client_id: str, secret: str) -> str:
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    req = urllib.request.Request(issuer + "/token", data=b"grant_type=client_credentials&scope=wallet%3Apay",
                                 headers={"Authorization": "Basic " + basic,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())["access_token"]


class KeepAliveIntrospection:
    def __init__(self, issuer: str, client_id: str, secret: str, token: str) -> None:
        url = urllib.parse.urlsplit(issuer)
        self.conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
        self.body = urllib.parse.urlencode({"token": token, "token_type_hint": "access_token"})
        pair = f"{urllib.parse.quote(client_id, safe='')}:{urllib.parse.quote(secret, safe='')}"
        self.headers = {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
                        "Content-Type": "application/x-www-form-urlencoded"}

    def __call__(self) -> None:
        try:
            self.conn.request("POST", "/introspect", body=self.body, headers=self.headers)
            answer = self.conn.getresponse()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # The server may close a keep-alive connection left idle (between the
            # batches); this happens only on the untimed call that opens each batch.
            self.conn.close()
            self.conn.request("POST", "/introspect", body=self.body, headers=self.headers)
            answer = self.conn.getresponse()
        data = answer.read()
        if answer.status != 200 or json.loads(data).get("active") is not True:
            raise SystemExit(f"keep-alive introspection answered {answer.status}: {data[:200]!r}")


def timed(fn, calls: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - t0) / 1000.0)
    return samples


def summary(samples: list[float]) -> tuple[float, float, float]:
    deciles = statistics.quantiles(samples, n=10)
    return statistics.median(samples), deciles[0], deciles[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--local-calls", type=int, default=2000, help="local verifications per round")
    parser.add_argument("--introspect-calls", type=int, default=200, help="introspections per round (each kind)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the provider")
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite",
                        help="sqlite: embedded (file, in-process counters); postgresql: a fresh database "
                             "idp_rp_bench_* (dropped at the end) and Redis")
    parser.add_argument("--postgres-url", default=os.environ.get(
        "IDP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
        help="where the fresh database is created (as that user)")
    parser.add_argument("--redis-url", default=os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    args.database_url, drop = fresh_database(args.backend, args.postgres_url)
    try:
        run(args)
    finally:
        drop()


def fresh_database(backend: str, admin_url: str):  # type: ignore[no-untyped-def]
    if backend == "sqlite":
        return None, lambda: None
    import secrets

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"idp_rp_bench_{secrets.token_hex(3)}"
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), drop


def run(args: argparse.Namespace) -> None:

    with tempfile.TemporaryDirectory(prefix="idp-rp-bench-") as tmp:
        work = Path(tmp)
        port = free_port()
        issuer = f"http://localhost:{port}"
        env = {**os.environ, "IDP_ENV": "development", "IDP_ISSUER": issuer,
               "IDP_DATABASE_URL": args.database_url or f"sqlite:///{work / 'idp.sqlite3'}",
               "IDP_KEYS_DIR": str(work / "keys"), "IDP_MAIL_OUTBOX": str(work / "outbox"),
               "IDP_RATE_LIMIT_INTROSPECTION": "1000000 per minute", "IDP_RATE_LIMIT_TOKEN": "1000 per minute"}
        env.pop("IDP_REDIS_URL", None)
        env.pop("IDP_TRUSTED_PROXIES", None)
        if args.backend == "postgresql":
            env["IDP_REDIS_URL"] = args.redis_url
            env["IDP_REDIS_PREFIX"] = f"idp-rp-bench-{port}"
        subprocess.run([IDP, "db", "upgrade"], env=env, check=True, cwd=ROOT, capture_output=True)
        created = subprocess.run(
            [IDP, "clients", "create", "--name", "Wallet", "--grant-type", "client_credentials",
             "--scope", "wallet:pay", "--access-token-seconds", "3600", "--json"],
            env=env, check=True, cwd=ROOT, capture_output=True, text=True)
        client = json.loads(created.stdout)
        proc = start_provider(env, port, args.workers, work / "server.log")
        try:
            token = access_token(issuer, client["client_id"], client["client_secret"])
            validator = TokenValidator.for_issuer(issuer, audience=client["client_id"],
                                                  client_id=client["client_id"], client_secret=client["client_secret"])
            keep_alive = KeepAliveIntrospection(issuer, client["client_id"], client["client_secret"], token)
            kinds = {
                "local verification (warm JWKS cache)": (lambda: validator.validate(token, scope="wallet:pay"),
                                                         args.local_calls),
                "introspection round trip (idp.rp: urllib, new connection)": (
                    lambda: validator.validate(token, scope="wallet:pay", introspect=True), args.introspect_calls),
                "introspection round trip (one kept-alive connection)": (keep_alive, args.introspect_calls),
            }
            for fn, _ in kinds.values():  # warm up: JWKS fetched, connections and caches primed
                timed(fn, 20)
            fetches = validator.jwks.fetches
            load_before = loadavg()
            samples: dict[str, list[float]] = {name: [] for name in kinds}
            for _ in range(args.rounds):
                for name, (fn, calls) in kinds.items():
                    fn()  # untimed: the keep-alive connection is open again, whatever came before
                    samples[name] += timed(fn, calls)
            load_after = loadavg()
            assert validator.jwks.fetches == fetches, "the JWKS was refetched while measuring"
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()

    info = machine()
    backend = "PostgreSQL + Redis" if args.backend == "postgresql" else "SQLite, in-process counters"
    print(f"machine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, {info['date']}, "
          f"load average {load_before} before / {load_after} after (1, 5, 15 min)")
    print(f"provider: `idp serve --workers {args.workers}` on loopback, {backend}; "
          f"{args.rounds} interleaved rounds\n")
    print("| per call | calls | median µs | p10 µs | p90 µs |")
    print("|---|---:|---:|---:|---:|")
    medians = {}
    for name, values in samples.items():
        median, p10, p90 = summary(values)
        medians[name] = median
        print(f"| {name} | {len(values)} | {median:,.0f} | {p10:,.0f} | {p90:,.0f} |")
    local, *remote = medians.values()
    print()
    for name, value in list(medians.items())[1:]:
        print(f"- {name} / local: **{value / local:,.0f}x** the median")
    spread = []
    for short, (name, (_, calls)) in zip(("local", "introspection", "keep-alive introspection"), kinds.items()):
        per_round = [statistics.median(samples[name][i * calls:(i + 1) * calls]) for i in range(args.rounds)]
        spread.append(f"{short} {min(per_round):,.0f}-{max(per_round):,.0f} µs")
    print(f"- medians of single rounds ranged: {', '.join(spread)}")


if __name__ == "__main__":
    main()
