"""Instructions per request of idp's machine endpoints, in process, under callgrind.

Throughput on a shared 2-core machine moves with whatever else runs; the number of CPU
instructions a request executes does not (the same code, inputs and environment give the
same count, whatever the load). This counts them for each endpoint of issue 3's
benchmark, so that a change to the request path can be judged in minutes on a busy
machine, and the wrk figures (run.sh) then tell what it is worth under load.

    .venv/bin/python benchmarks/oidc/instructions.py                      # SQLite, memory counters
    .venv/bin/python benchmarks/oidc/instructions.py --backend postgresql # PostgreSQL + Redis

What it does: creates a fresh database (a temporary SQLite file, or a PostgreSQL database
``idp_instr_<pid>`` dropped at the end) with the real CLI (`idp db upgrade`, a user, a
client_credentials client and a first-party app), then for each case starts a child
process under ``valgrind --tool=callgrind --instr-atstart=no``: the child builds the app
with ``create_app()``, warms up with 50 requests through ``app.wsgi_app`` (a prebuilt WSGI
environ: no test client, no server), switches instrumentation on for ``-n`` requests
(``callgrind_control -i on``), off again, and the total is divided by ``-n``. Every
response is checked (status 200 and its content). The HTTP server (Granian) is not
counted: its work is in Rust threads, and run.sh measures it. Needs valgrind (Debian's
``valgrind`` package, which provides callgrind_control). About 1-2 minutes per backend.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
IDP = Path(sys.executable).with_name("idp")
CASES = ("client_credentials", "refresh_token", "introspection", "introspection_jwt", "jwks", "discovery")
WARMUP = 50


# ---------------------------------------------------------------- the child (under callgrind)
def child(case: str, count: int, clients_file: str) -> None:
    from idp import create_app

    clients = json.loads(Path(clients_file).read_text())
    app = create_app()

    def basic(c: dict[str, str]) -> str:
        return "Basic " + base64.b64encode(f"{c['client_id']}:{c['client_secret']}".encode()).decode()

    def call(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
        environ = {
            "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "18080", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr, "wsgi.multithread": True,
            "wsgi.multiprocess": True, "wsgi.run_once": False, "wsgi.version": (1, 0), "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "127.0.0.1:18080", "CONTENT_LENGTH": str(len(body)),
            "CONTENT_TYPE": "application/x-www-form-urlencoded" if body else "",
        }
        environ.update({"HTTP_" + k.upper().replace("-", "_"): v for k, v in (headers or {}).items()})
        status: list[str] = []
        body_iter = app.wsgi_app(environ, lambda s, h, e=None: status.append(s))
        try:
            out = b"".join(body_iter)
        finally:
            getattr(body_iter, "close", lambda: None)()
        if not status or not status[0].startswith("200"):
            raise SystemExit(f"{case}: {status} {out[:300]!r}")
        return out

    cc, rp = basic(clients["cc"]), basic(clients["rp"])
    chain = {"token": clients["refresh_token"]}
    access_token = json.loads(call("POST", "/token", b"grant_type=client_credentials&scope=api",
                                   {"Authorization": cc}))["access_token"]

    def one() -> None:
        if case == "client_credentials":
            out = call("POST", "/token", b"grant_type=client_credentials&scope=api", {"Authorization": cc})
            assert b'"access_token"' in out
        elif case == "refresh_token":
            out = call("POST", "/token", f"grant_type=refresh_token&refresh_token={chain['token']}".encode(),
                       {"Authorization": rp})
            chain["token"] = json.loads(out)["refresh_token"]  # rotated: the old one is spent
        elif case == "introspection":
            out = call("POST", "/introspect", f"token={clients['introspect']}&token_type_hint=refresh_token".encode(),
                       {"Authorization": rp})
            assert json.loads(out)["active"] is True
        elif case == "introspection_jwt":
            out = call("POST", "/introspect", f"token={access_token}&token_type_hint=access_token".encode(),
                       {"Authorization": cc})
            assert json.loads(out)["active"] is True
        elif case == "jwks":
            assert b'"keys"' in call("GET", "/jwks.json")
        else:
            assert b'"token_endpoint"' in call("GET", "/.well-known/openid-configuration")

    for _ in range(WARMUP):
        one()
    pid = str(os.getpid())
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
    for _ in range(count):
        one()
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)


# ---------------------------------------------------------------- the parent
def idp(env: dict[str, str], *args: str, stdin: str = "") -> str:
    result = subprocess.run([str(IDP), *args], env=env, input=stdin, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"idp {' '.join(args)}: {result.stderr.strip()}")
    return result.stdout


def prepare(env: dict[str, str], work: Path) -> Path:
    """Database, user, clients, and refresh tokens issued the way the token endpoint does."""
    idp(env, "db", "upgrade")
    password = secrets.token_urlsafe(24)
    user = json.loads(idp(env, "users", "create", "--email", "bench@example.com", "--password-stdin", "--verified",
                          stdin=password + "\n"))
    cc = json.loads(idp(env, "clients", "create", "--name", "svc", "--grant-type", "client_credentials",
                        "--scope", "api", "--json"))
    rp = json.loads(idp(env, "clients", "create", "--name", "app", "--first-party", "--redirect-uri",
                        "http://127.0.0.1:9/cb", "--grant-type", "authorization_code", "--grant-type",
                        "refresh_token", "--scope", "openid api", "--json"))
    program = (
        "import datetime as dt, json, sys\n"
        "from idp.registry import Registry\nfrom idp.settings import Settings\nfrom idp.assurance import ACR_PWD\n"
        "registry = Registry.build(Settings.from_env())\n"
        "with registry.sessionmaker() as db:\n"
        "    tokens = registry.services(db).oauth_tokens\n"
        "    out = [tokens.issue_refresh(client_id=sys.argv[1], user_id=sys.argv[2], session_id=None, code_id=None,\n"
        "           family_id=None, scope='openid api', auth_time=dt.datetime.now(dt.UTC), amr=['pwd'],\n"
        "           acr=ACR_PWD)[1] for _ in range(2)]\n"
        "    db.commit()\n"
        "print(json.dumps(out))\n"
    )
    result = subprocess.run([sys.executable, "-c", program, rp["client_id"], user["id"]], env=env,
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise SystemExit(f"issuing refresh tokens: {result.stderr.strip()}")
    chain, introspect = json.loads(result.stdout)
    path = work / "clients.json"
    path.write_text(json.dumps({"cc": cc, "rp": rp, "refresh_token": chain, "introspect": introspect}))
    return path


def measure(env: dict[str, str], case: str, count: int, clients: Path, work: Path) -> int:
    out = work / f"callgrind.{case}"
    cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
           sys.executable, __file__, "--child", case, "-n", str(count), "--clients", str(clients)]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join([line for line in result.stderr.splitlines() if not line.startswith("==")][-15:])
        raise SystemExit(f"{case} failed:\n{tail}")
    for line in out.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1]) // count
    raise SystemExit(f"{case}: no totals in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("IDP_TEST_POSTGRES_URL",
                                                                 "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--redis-url", default=os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, of {', '.join(CASES)}")
    parser.add_argument("-n", type=int, default=200, help="requests counted per case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--clients", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.n, args.clients)
        return
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is required (apt-get install valgrind)")
    cases = [c for c in args.cases.split(",") if c]
    if unknown := set(cases) - set(CASES):
        raise SystemExit(f"unknown cases: {', '.join(sorted(unknown))}")

    work = Path(tempfile.mkdtemp(prefix="idp-instr-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDP_")}
    env.update(IDP_ISSUER="http://127.0.0.1:18080", IDP_KEYS_DIR=str(work / "keys"), IDP_MAIL_OUTBOX=str(work / "outbox"),
               IDP_MFA_POLICY="optional", IDP_RATE_LIMIT_TOKEN="10000000 per minute",
               IDP_RATE_LIMIT_INTROSPECTION="10000000 per minute", PYTHONDONTWRITEBYTECODE="1")
    database = None
    if args.backend == "postgresql":
        import psycopg
        from sqlalchemy.engine import make_url

        admin = make_url(args.postgres_url)
        database = f"idp_instr_{os.getpid()}"
        plain = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        env.update(IDP_DATABASE_URL=admin.set(database=database).render_as_string(hide_password=False),
                   IDP_REDIS_URL=args.redis_url, IDP_REDIS_PREFIX=f"idp-instr-{os.getpid()}")
    else:
        env["IDP_DATABASE_URL"] = f"sqlite:///{work / 'idp.sqlite3'}"
    try:
        clients = prepare(env, work)
        print(f"| case ({args.backend}) | instructions per request |")
        print("|---|---:|")
        for case in cases:
            print(f"| {case} | {measure(env, case, args.n, clients, work):,} |", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if database is not None:
            with psycopg.connect(plain, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
