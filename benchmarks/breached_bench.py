"""Breached-password filter benchmark (issue 5): import rate, size, FPR, lookup latency.

    .venv/bin/python benchmarks/breached_bench.py --count 100000000 --workdir /var/tmp/idp-bench

1. Generates ``--count`` random SHA-1 hashes as a Pwned Passwords download file
   (``SHA1HEX:COUNT`` lines with CRLF, as published).
2. Imports it with ``idp breached import`` (the real command, in its own process) and
   reads that process's peak memory (ru_maxrss of the child).
3. In a fresh process maps the filter and measures single lookups of random passwords
   (SHA-1 + lookup, what a sign-in pays) for p50/p99, the false-positive rate over
   ``--fpr-trials`` random passwords, and the process's memory.
4. Prints a Markdown table (medians over ``--repeat`` runs) with the extrapolation to
   1.5 billion hashes, for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def generate(path: Path, count: int, *, seed: int = 1, chunk: int = 2_000_000) -> None:
    rng = np.random.default_rng(seed)
    with open(path, "wb") as out:
        left = count
        while left:
            m = min(chunk, left)
            raw = rng.integers(0, 256, size=(m, 20), dtype=np.uint8)
            lines = np.empty((m, 46), dtype=np.uint8)
            lines[:, 0:40:2] = HEX[raw >> 4]
            lines[:, 1:40:2] = HEX[raw & 15]
            lines[:, 40:44] = np.frombuffer(b":123", dtype=np.uint8)
            lines[:, 44:46] = np.frombuffer(b"\r\n", dtype=np.uint8)
            out.write(lines.tobytes())
            left -= m


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def measure_lookups(corpus: str, trials: int, fpr_trials: int) -> dict[str, float]:
    """Runs in a fresh process: what a worker pays."""
    from idp.accounts.passwords import normalize_password
    from idp.breached.filter import CompactFilter

    began = time.perf_counter()
    filt = CompactFilter.open(Path(corpus))
    open_ms = (time.perf_counter() - began) * 1000
    passwords = [secrets.token_urlsafe(12) for _ in range(trials)]
    for p in passwords[:2000]:  # warm the interpreter, not the pages: queries are random
        filt.contains(p)
    samples = []
    clock = time.perf_counter_ns
    for p in passwords:
        t0 = clock()
        filt.contains(normalize_password(p))
        samples.append(clock() - t0)
    samples.sort()
    fp = 0
    for _ in range(fpr_trials // 100_000 or 1):
        batch = [secrets.token_urlsafe(12) for _ in range(min(fpr_trials, 100_000))]
        fp += sum(filt.contains(p) for p in batch)
    tested = (fpr_trials // 100_000 or 1) * min(fpr_trials, 100_000)
    return {
        "open_ms": open_ms,
        "p50_us": samples[len(samples) // 2] / 1000,
        "p99_us": samples[int(len(samples) * 0.99)] / 1000,
        "fpr": fp / tested,
        "fpr_trials": tested,
        "expected_fpr": filt.expected_false_positive_rate,
        "entries": len(filt),
        "bits_per_entry": filt.bits_per_entry,
        "size_bytes": filt.size_bytes,
        "rss_mib": status_kib("VmRSS") / 1024,
        "rss_anon_mib": status_kib("RssAnon") / 1024,
        "rss_file_mib": status_kib("RssFile") / 1024,
    }


# The command itself, reporting its own peak resident memory when it exits.
_IMPORT_WITH_PEAK = (
    "import atexit, resource, sys\n"
    "def report():\n"
    "    r = resource.getrusage(resource.RUSAGE_SELF)\n"
    "    print('PEAK_RSS_KIB=%d CPU_S=%.3f' % (r.ru_maxrss, r.ru_utime + r.ru_stime), file=sys.stderr)\n"
    "atexit.register(report)\n"
    "from idp.cli import main\n"
    "main()\n"
)


def run_import(source: Path, output: Path) -> dict[str, float]:
    env = dict(os.environ, IDP_BREACHED_CORPUS=str(output))
    began = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITH_PEAK, "breached", "import", "--format", "sha1",
         "--without-shipped-list", str(source)],
        env=env, capture_output=True, text=True, check=False, cwd=ROOT,
    )
    seconds = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"import failed: {proc.stderr.strip()}")
    peak_kib = int(proc.stderr.rsplit("PEAK_RSS_KIB=", 1)[1].split()[0])
    cpu_s = float(proc.stderr.rsplit("CPU_S=", 1)[1].split()[0])
    load = os.getloadavg()[0]
    return {"import_s": seconds, "cpu_s": cpu_s, "load": load, "peak_rss_mib": peak_kib / 1024,
            "summary": proc.stdout.strip()}


def extrapolate(count: int, rate: float) -> dict[str, float]:
    from idp.breached.filter import Layout, bucket_bits

    layout = Layout(k=bucket_bits(count), n=count)
    return {
        "entries": count,
        "size_gib": layout.size / 2**30,
        "bits_per_entry": 8 * layout.size / count,
        "expected_fpr": count / float(1 << (layout.k + 16)),
        "import_min": count / rate / 60,
        "temp_disk_gib": 16 * count / 2**30,  # runs, then the merged keys (8 bytes each)
        "input_gib": 46 * count / 2**30,
    }


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = status_kib_total()
    return f"{os.cpu_count()} CPU ({model}), {mem} GiB RAM, Python {platform.python_version()}, numpy {np.__version__}"


def status_kib_total() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000_000, help="hashes in the synthetic corpus")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/idp-breached-bench"))
    parser.add_argument("--repeat", type=int, default=3, help="runs; the table shows medians")
    parser.add_argument("--lookups", type=int, default=200_000, help="timed single lookups per run")
    parser.add_argument("--fpr-trials", type=int, default=1_000_000, help="random passwords per run")
    parser.add_argument("--keep", action="store_true", help="keep the generated corpus and filter")
    parser.add_argument("--lookup-only", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.lookup_only:
        print(json.dumps(measure_lookups(args.lookup_only, args.lookups, args.fpr_trials)))
        return

    args.workdir.mkdir(parents=True, exist_ok=True)
    source = args.workdir / f"pwned-{args.count}.txt"
    output = args.workdir / f"corpus-{args.count}.idpbf"
    if not source.exists() or source.stat().st_size != 46 * args.count:
        began = time.perf_counter()
        generate(source, args.count)
        print(f"generated {args.count} hashes ({source.stat().st_size / 2**30:.2f} GiB) in"
              f" {time.perf_counter() - began:.0f} s", file=sys.stderr)
    imports, lookups = [], []
    for run in range(args.repeat):
        subprocess.run(["sync"], check=False)
        imports.append(run_import(source, output))
        print(f"run {run + 1}: {imports[-1]['summary']}", file=sys.stderr)
        proc = subprocess.run(
            [sys.executable, __file__, "--lookup-only", str(output), "--lookups", str(args.lookups),
             "--fpr-trials", str(args.fpr_trials)],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )
        lookups.append(json.loads(proc.stdout))
        print(f"run {run + 1}: {lookups[-1]}", file=sys.stderr)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    rate = args.count / med(imports, "import_s")
    big = extrapolate(1_500_000_000, rate)
    entries = lookups[0]["entries"]
    print(f"""
| figure | {args.count:,} hashes (median of {args.repeat}) | extrapolated to 1.5 billion |
|---|---|---|
| import time (whole command, from text) | {med(imports, 'import_s'):.1f} s | {big['import_min']:.0f} min |
| import rate (wall clock) | {rate / 1e6:.2f} M hashes/s | same (linear: sort runs + one merge) |
| import CPU time (user + system) | {med(imports, 'cpu_s'):.1f} s = {args.count / med(imports, 'cpu_s') / 1e6:.2f} M hashes per CPU-second | {1.5e9 / (args.count / med(imports, 'cpu_s')) / 60:.0f} CPU-min |
| load average during the runs | {', '.join(f"{r['load']:.1f}" for r in imports)} (on {os.cpu_count()} CPUs) | |
| import peak memory (RSS) | {max(r['peak_rss_mib'] for r in imports):.0f} MiB | same (bounded: runs and partitions have fixed sizes) |
| temporary disk during import | {16 * args.count / 2**30:.1f} GiB | {big['temp_disk_gib']:.0f} GiB (input itself {big['input_gib']:.0f} GiB) |
| filter file size | {lookups[0]['size_bytes'] / 2**20:.0f} MiB | {big['size_gib']:.2f} GiB |
| bits per entry | {lookups[0]['bits_per_entry']:.2f} | {big['bits_per_entry']:.2f} |
| false-positive rate, measured | {med(lookups, 'fpr'):.2e} over {lookups[0]['fpr_trials']:,} random passwords (expected {lookups[0]['expected_fpr']:.2e}) | expected {big['expected_fpr']:.2e} |
| lookup p50 (SHA-1 + filter, in process) | {med(lookups, 'p50_us'):.2f} µs | about the same (two cache lines; cold pages cost a page-cache read) |
| lookup p99 | {med(lookups, 'p99_us'):.2f} µs | about the same |
| open (mmap) | {med(lookups, 'open_ms'):.2f} ms | same |
| lookup process memory after {args.lookups + args.fpr_trials:,} lookups | {med(lookups, 'rss_mib'):.0f} MiB RSS, of which {med(lookups, 'rss_file_mib'):.0f} MiB shared file pages | anonymous part the same; file pages shared by all workers |

Entries: {entries:,} unique. Machine: {machine()}. Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.
""")
    if not args.keep:
        source.unlink(missing_ok=True)
        output.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
