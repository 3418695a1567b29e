"""Turn benchmarks/.work/oidc/results.jsonl into the Markdown section for RESULTS.md.

    report.py WORKDIR      (run.sh calls it; the knobs come from the environment)

Medians over the runs for each server and case; the ratio is ours/reference requests/s.
"""

from __future__ import annotations

import json
import os
import platform
import re
import statistics
import subprocess
import sys
from collections import defaultdict
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CASES = [
    "client_credentials",
    "refresh_token",
    "introspection",
    "introspection (JWT access token)",
    "jwks",
    "discovery",
]
TARGETS = ("client_credentials", "refresh_token")


def sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def machine() -> str:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return f"{os.cpu_count()} CPUs (nproc {sh('nproc')}), {cpu}, {mem_kib / 1024 / 1024:.1f} GiB RAM, Linux {platform.release()}"


def versions() -> str:
    def v(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    node_dir = ROOT / "benchmarks/oidc/node/node_modules"
    def npm(name: str) -> str:
        try:
            return json.loads((node_dir / name / "package.json").read_text())["version"]
        except OSError:
            return "?"

    commit = sh("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD")
    dirty = " + uncommitted changes" if sh("git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no") else ""
    pg = ""
    if os.environ.get("BENCH_DATABASE", "postgresql") == "postgresql":
        try:
            import psycopg

            with psycopg.connect(os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")) as c:
                pg = "PostgreSQL " + c.execute("SHOW server_version").fetchone()[0]
        except Exception:  # noqa: BLE001 - a version string is not worth failing the report
            pg = "PostgreSQL ?"
    else:
        pg = "SQLite " + __import__("sqlite3").sqlite_version
    try:
        import redis

        rv = "Redis " + redis.Redis.from_url(os.environ.get("IDP_REDIS_URL", "redis://127.0.0.1:6379/0")).info("server")["redis_version"]
    except Exception:  # noqa: BLE001
        rv = "Redis ?"
    return (
        f"idp {v('idp')} (git {commit}{dirty}), Python {platform.python_version()}, Granian {v('granian')}, "
        f"Flask {v('flask')}, Authlib {v('authlib')}, joserfc {v('joserfc')}, cryptography "
        f"{v('cryptography')}, SQLAlchemy {v('sqlalchemy')}, psycopg {v('psycopg')}, {pg}, {rv}; "
        f"reference: oidc-provider {npm('oidc-provider')} (jose {npm('jose')}, koa {npm('koa')}) on Node.js "
        f"{sh('node', '--version')}; load generator: {sh('wrk', '-v').splitlines()[0] if sh('wrk', '-v') else 'wrk'}"
    )


def main() -> None:
    work = Path(sys.argv[1])
    rows = [json.loads(line) for line in (work / "results.jsonl").read_text().splitlines() if line.strip()]
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for row in rows:
        by[(row["server"], row["case"])].append(row["result"] | {"load_before": row["load_before"], "run": row["run"]})

    def med(server: str, case: str, key: str) -> float | None:
        results = by.get((server, case))
        return statistics.median(r[key] for r in results) if results else None

    def total(server: str, case: str, key: str) -> int:
        return sum(r[key] for r in by.get((server, case), []))

    def fmt(x: float | None, spec: str) -> str:
        return "n/a" if x is None else format(x, spec)

    env = os.environ
    runs = int(env.get("RUNS", "3"))
    out: list[str] = []
    started = (work / "started.txt").read_text().strip()
    out.append(f"## OIDC endpoints: idp vs node-oidc-provider ({started})")
    out.append("")
    out.append(f"- Machine: {machine()}.")
    out.append(f"- Versions: {versions()}.")
    out.append(
        f"- Command: `make bench-oidc` (= `bash benchmarks/oidc/run.sh`; RUNS={runs} DURATION={env.get('DURATION')} "
        f"WARMUP={env.get('WARMUP')} CONNECTIONS={env.get('CONNECTIONS')} THREADS={env.get('THREADS')} "
        f"BENCH_DATABASE={env.get('BENCH_DATABASE')}): wrk, {env.get('CONNECTIONS')} keep-alive connections, "
        f"{env.get('THREADS')} threads, {env.get('WARMUP')} s warm-up then {env.get('DURATION')} s measured per "
        f"case and server, both servers in the same run, on loopback; figures are medians of {runs} run(s)."
    )
    out.append(
        f"- idp: `idp serve --workers 2` (Granian, 4 threads each), {env.get('BENCH_DATABASE')} + Redis. "
        "Reference: one node process, in-memory storage (a Map adapter, see benchmarks/oidc/README.md)."
    )
    out.append(f"- Load average (1/5/15 min) at start: {(work / 'uptime-start.txt').read_text().split('load average:')[-1].strip()}; "
               f"at end: {(work / 'uptime-end.txt').read_text().split('load average:')[-1].strip()}.")
    out.append("")
    out.append("| case | idp req/s | reference req/s | ratio idp/ref | idp p50 ms | ref p50 ms | idp p99 ms | ref p99 ms | failed responses idp / ref |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for case in CASES:
        if not by.get(("ours", case)) and not by.get(("node", case)):
            continue
        o, n = med("ours", case, "rps"), med("node", case, "rps")
        ratio = f"**{o / n:.2f}x**" if (o and n) else "n/a"
        bad = lambda s: (  # noqa: E731
            "n/a" if not by.get((s, case)) else
            str(total(s, case, "bad_status") + total(s, case, "bad_body") + total(s, case, "starved")
                + sum(sum(r["socket_errors"].values()) for r in by[(s, case)]))
        )
        out.append(
            f"| {case} | {fmt(o, ',.0f')} | {fmt(n, ',.0f')} | {ratio} | {fmt(med('ours', case, 'p50_ms'), '.1f')} | "
            f"{fmt(med('node', case, 'p50_ms'), '.1f')} | {fmt(med('ours', case, 'p99_ms'), '.1f')} | "
            f"{fmt(med('node', case, 'p99_ms'), '.1f')} | {bad('ours')} / {bad('node')} |"
        )
    if any(server == "gunicorn" for server, _ in by):
        out.append("")
        out.append("The same idp app under gunicorn (2 gthread workers of 8 threads, keep-alive, SO_REUSEPORT; "
                   "the serving set-up issue 3 names and `idp serve` used until 2026-11-28), same database and "
                   "Redis, in the same runs:")
        out.append("")
        out.append("| case | idp (Granian) req/s | idp (gunicorn) req/s | reference req/s | Granian/ref | gunicorn/ref "
                   "| gunicorn p50 / p99 ms | failed (gunicorn) |")
        out.append("|---|---:|---:|---:|---:|---:|---|---|")
        for case in TARGETS:
            o, g, n = med("ours", case, "rps"), med("gunicorn", case, "rps"), med("node", case, "rps")
            failed = total("gunicorn", case, "bad_status") + total("gunicorn", case, "bad_body") + total(
                "gunicorn", case, "starved") + sum(sum(r["socket_errors"].values()) for r in by.get(("gunicorn", case), []))
            out.append(
                f"| {case} | {fmt(o, ',.0f')} | {fmt(g, ',.0f')} | {fmt(n, ',.0f')} | "
                f"{f'{o / n:.2f}x' if o and n else 'n/a'} | {f'{g / n:.2f}x' if g and n else 'n/a'} | "
                f"{fmt(med('gunicorn', case, 'p50_ms'), '.1f')} / {fmt(med('gunicorn', case, 'p99_ms'), '.1f')} | {failed} |"
            )
    out.append("")
    out.append(
        "Failed responses = non-2xx statuses + 2xx bodies without the expected content (access_token, rotated "
        "refresh_token, `active: true`, keys, token_endpoint) + socket errors, summed over all measured runs."
    )
    out.append("")
    out.append("<details><summary>Every measured run</summary>")
    out.append("")
    out.append("| run | server | case | req/s | p50 ms | p99 ms | requests | failed | load before |")
    out.append("|---:|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        r = row["result"]
        failed = r["bad_status"] + r["bad_body"] + r["starved"] + sum(r["socket_errors"].values())
        name = {"ours": "idp", "gunicorn": "idp (gunicorn)"}.get(row["server"], "reference")
        out.append(
            f"| {row['run']} | {name} | {row['case']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
            f"{r['requests']:,} | {failed} | {row['load_before']} |"
        )
    out.append("")
    out.append("</details>")
    out.append("")
    for case in TARGETS:
        o, n = med("ours", case, "rps"), med("node", case, "rps")
        if o and n:
            verdict = "meets" if o >= n else "misses"
            out.append(f"- Target >= 1.0x on {case}: {o / n:.2f}x, {verdict} it.")
    print("\n".join(out))


if __name__ == "__main__":
    main()
