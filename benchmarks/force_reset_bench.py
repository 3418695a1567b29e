"""``idp users force-reset --all`` over generated accounts (issue 7, Done 4).

One command (benchmarks/README.md):

    .venv/bin/python benchmarks/force_reset_bench.py --users 100000 --backend both

For each backend it:
1. creates a fresh database (PostgreSQL: ``CREATE DATABASE`` as postgres on 127.0.0.1;
   SQLite: a file under ``--workdir``) and runs ``idp db upgrade``;
2. bulk-inserts ``--users`` accounts (one argon2 hash shared by all, so generation is not
   the benchmark): 90 % verified, 1 % disabled, and ``--live-sessions`` of them with a live
   SSO session and a refresh token, so the session-ending path is exercised;
3. runs the real command, ``idp users force-reset --all``, as a child process with the
   file outbox (one .eml per mail), and takes its wall time and peak RSS from
   ``os.wait4`` (ru_maxrss of that child alone);
4. checks the result in the database and the outbox: every account locked out, every
   verified active account mailed exactly once, no live session or refresh token left;
5. prints a Markdown table, and drops the database / deletes the files.

``--sizes 10000,100000`` runs several sizes, to show that peak memory does not grow with
the number of accounts (keyset batches of ``--batch-size``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

IDP = [sys.executable, "-c", "from idp.cli import main; main()"]


def create_database(kind: str, workdir: Path, admin_url: str) -> tuple[str, callable]:  # type: ignore[valid-type]
    if kind == "sqlite":
        path = workdir / f"bench-{secrets.token_hex(3)}.sqlite3"
        return f"sqlite:///{path}", lambda: [p.unlink() for p in workdir.glob(path.name + "*")]
    name = f"idp_force_reset_bench_{secrets.token_hex(3)}"
    admin = create_engine(make_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    return url.replace("postgresql+psycopg://", "postgresql://"), drop


def generate(url: str, users: int, live_sessions: int) -> dict[str, int]:
    from idp.accounts.hashing import PasswordHasher
    from idp.crypto.tokens import new_secret, sha256_hex
    from idp.db import make_engine, random_id
    from idp.models import SsoSession, User

    engine = make_engine(url)
    password_hash = PasswordHasher(time_cost=1, memory_kib=8, parallelism=1).hash("correct horse battery staple")
    now = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
    mailable = 0
    ids: list[str] = []
    with engine.begin() as conn:
        chunk: list[dict[str, object]] = []
        for i in range(users):
            verified, disabled = i % 10 != 0, i % 100 == 1
            mailable += verified and not disabled
            uid = random_id()
            if len(ids) < live_sessions:
                ids.append(uid)
            chunk.append({"id": uid, "email": f"user{i:07d}@example.com", "password_hash": password_hash,
                          "password_changed_at": now, "must_change_password": False, "created_at": now,
                          "email_verified_at": now if verified else None, "disabled_at": now if disabled else None})
            if len(chunk) == 10_000:
                conn.execute(insert(User.__table__), chunk)
                chunk = []
        if chunk:
            conn.execute(insert(User.__table__), chunk)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)
        conn.execute(insert(SsoSession.__table__), [
            {"id": random_id(), "token_hash": sha256_hex(new_secret()), "user_id": uid, "created_at": now,
             "last_seen_at": dt.datetime.now(dt.UTC), "expires_at": later, "auth_time": now, "amr": ["pwd", "otp"]}
            for uid in ids
        ])
    engine.dispose()
    return {"users": users, "mailable": mailable, "sessions": len(ids)}


def prepare(url: str, workdir: Path) -> dict[str, str]:
    outbox = workdir / "outbox"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "IDP_ENV": "development",
        "IDP_DATABASE_URL": url,
        "IDP_KEYS_DIR": str(workdir / "keys"),
        "IDP_MAIL_OUTBOX": str(outbox),
        "IDP_BREACHED_CORPUS": str(workdir / "none.idpbf"),
    }
    subprocess.run([*IDP, "db", "upgrade"], env=env, check=True, capture_output=True)
    return env


def measure(env: dict[str, str], batch_size: int) -> tuple[float, int, str, str]:
    out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    start = time.perf_counter()
    child = subprocess.Popen([*IDP, "users", "force-reset", "--all", "--batch-size", str(batch_size)], env=env,
                             stdout=out, stderr=err)
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    if child.returncode != 0:
        raise SystemExit(f"force-reset failed: {err.read().decode()[-2000:]}")
    return elapsed, usage.ru_maxrss, out.read().decode(), err.read().decode()


def check(url: str, outbox: Path, expected: dict[str, int]) -> dict[str, int]:
    from idp.db import make_engine
    from idp.models import SsoSession, User

    engine = make_engine(url)
    with engine.connect() as conn:
        usable = conn.scalar(select(func.count()).where(User.password_hash.is_not(None)))
        live = conn.scalar(select(func.count()).where(SsoSession.ended_at.is_(None)))
    engine.dispose()
    files = sum(1 for _ in outbox.glob("*.eml"))
    assert usable == 0, f"{usable} accounts still have a usable password"
    assert live == 0, f"{live} sessions still live"
    assert files == expected["mailable"], (files, expected["mailable"])
    return {"mails": files}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000", help="comma-separated account counts")
    parser.add_argument("--backend", choices=("postgresql", "sqlite", "both"), default="both")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--live-sessions", type=int, default=2000)
    parser.add_argument("--postgres-url", default=os.environ.get(
        "IDP_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    backends = ("postgresql", "sqlite") if args.backend == "both" else (args.backend,)
    rows = []
    for backend in backends:
        for size in (int(s) for s in args.sizes.split(",")):
            work = Path(tempfile.mkdtemp(prefix="idp-force-reset-", dir=args.workdir))
            url, drop = create_database(backend, work, args.postgres_url)
            try:
                env = prepare(url, work)
                t0 = time.perf_counter()
                expected = generate(url, size, args.live_sessions)
                gen = time.perf_counter() - t0
                elapsed, rss_kib, _out, err = measure(env, args.batch_size)
                got = check(url, work / "outbox", expected)
                batches = sum(1 for line in err.splitlines() if line.startswith("force-reset: batch"))
                rows.append((backend, size, expected["mailable"], got["mails"], expected["sessions"], batches,
                             gen, elapsed, size / elapsed, rss_kib / 1024))
                print(f"{backend} {size}: {elapsed:.1f} s, peak RSS {rss_kib / 1024:.0f} MiB", file=sys.stderr)
            finally:
                drop()
                shutil.rmtree(work, ignore_errors=True)
    print(f"\nMachine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"batch size {args.batch_size}\n")
    print("| backend | accounts | to mail | mailed (.eml) | live sessions ended | batches | generate (s) "
          "| force-reset --all (s) | accounts/s | peak RSS (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]:,} | {r[2]:,} | {r[3]:,} | {r[4]:,} | {r[5]} | {r[6]:.1f} | {r[7]:.1f} "
              f"| {r[8]:,.0f} | {r[9]:.0f} |")


if __name__ == "__main__":
    main()
