"""Streaming import: Pwned Passwords ``SHA1HEX:COUNT`` lines or plain password lists.

Memory stays bounded whatever the input size (an external sort by hash prefix):

1. **Runs.** Input is read in 8 MiB blocks and parsed with numpy into 64-bit keys (the
   leading 64 bits of the SHA-1). Every ``RUN_KEYS`` keys are sorted, de-duplicated and
   written to a temporary run file.
2. **Merge.** The key space is cut into ``2^p`` prefix partitions of about
   ``PARTITION_KEYS`` keys; each partition is the concatenation of one contiguous slice
   of every run, sorted and de-duplicated, and appended to one merged file. The number
   of unique keys ``n`` is then exact.
3. **Write.** The filter (idp/breached/filter.py) is sized from ``n`` and filled in
   bucket ranges read from the merged file, with positioned writes, then moved into
   place atomically: processes that still map the old file keep reading it.

Bad lines are skipped and counted by reason, never fatal: not hex, wrong length, a count
that is not a number, not UTF-8, longer than ``MAX_LINE`` bytes (the rest of such a line
is discarded without being held in memory), or a password no policy would accept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from idp.breached.filter import (
    HEADER_SIZE,
    SUPER_BITS,
    CorpusFormatError,
    Layout,
    bucket_bits,
    bucket_starts,
    relative_offsets,
    split_keys,
)

BLOCK_BYTES = 8 << 20
# Longest line looked at: a hash line is 41 bytes plus a count; a password is at most
# 256 characters (1 KiB of UTF-8). Anything longer is junk and skipped.
MAX_LINE = 4096
MAX_PASSWORD_CHARS = 256
RUN_KEYS = 8 << 20  # 64 MiB of keys per sorted run
PARTITION_KEYS = 4 << 20  # about 32 MiB of keys merged at a time
BUCKETS_PER_WRITE = 1 << 18  # bucket range written per step (a multiple of a superblock)

FORMATS = ("auto", "sha1", "plain")

_HEX = np.full(256, 255, dtype=np.uint8)
for _i, _c in enumerate(b"0123456789ABCDEF"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"abcdef"):
    _HEX[_c] = 10 + _i
_HIGH_NIBBLES = np.uint64(0xF0F0F0F0F0F0F0F0)
_DIGIT = np.zeros(256, dtype=bool)
_DIGIT[ord("0") : ord("9") + 1] = True

Progress = Callable[[int], None]


@dataclass
class ImportStats:
    lines: int = 0
    keys: int = 0
    unique: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    size_bytes: int = 0
    formats: list[str] = field(default_factory=list)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    @property
    def bits_per_entry(self) -> float:
        return 8 * self.size_bytes / self.unique if self.unique else 0.0

    def summary(self) -> str:
        skipped = ", ".join(f"{count} {reason}" for reason, count in sorted(self.skipped.items()) if count)
        rate = self.keys / self.seconds if self.seconds else 0.0
        return (
            f"{self.unique} unique entries from {self.lines} lines"
            f" ({self.skipped_total} skipped{': ' + skipped if skipped else ''}),"
            f" {self.size_bytes} bytes ({self.bits_per_entry:.1f} bits/entry),"
            f" {self.seconds:.1f} s ({rate / 1e6:.2f} M lines/s)"
        )


# ---------------------------------------------------------------------- parsing
def _lines_of(stream: BinaryIO, stats: ImportStats, progress: Progress | None) -> Iterator[bytes]:
    """Blocks of whole lines (each ending in \\n); over-long lines are dropped and counted."""
    carry = b""
    discarding = False
    while True:
        block = stream.read(BLOCK_BYTES)
        if progress is not None and block:
            progress(len(block))
        if not block:
            break
        if discarding:
            cut = block.find(b"\n")
            if cut < 0:
                continue
            block = block[cut + 1 :]
            discarding = False
        data = carry + block
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
        else:
            carry = data[cut + 1 :]
            yield data[: cut + 1]
        if len(carry) > MAX_LINE:
            stats.lines += 1
            stats.skipped["longer than 4096 bytes"] += 1
            carry = b""
            discarding = True
    if carry and not discarding:
        yield carry + b"\n"


def detect_format(first_block: bytes) -> str:
    """``sha1`` when the first non-blank line is a hash (optionally ``:COUNT``), else ``plain``."""
    for line in first_block.split(b"\n", 64)[:64]:
        line = line.strip()
        if not line:
            continue
        head, _, count = line.partition(b":")
        if len(head) == 40 and all(c in b"0123456789abcdefABCDEF" for c in head) and (not _ or count.isdigit()):
            return "sha1"
        return "plain"
    return "sha1"


def parse_hash_lines(data: bytes, stats: ImportStats) -> np.ndarray:
    """Keys of the valid ``SHA1HEX[:COUNT]`` lines in ``data`` (whole lines ending in \\n).

    Vectorised: each line's 40 hex characters (and the 21 bytes after the colon) are
    taken as rows of a strided window over the block, so the cost is a few passes over
    the bytes, not a Python loop per line.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if not len(ends):
        return np.empty(0, dtype=np.uint64)
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts
    nonempty = lengths > 0
    has_cr = np.zeros(len(ends), dtype=bool)
    has_cr[nonempty] = buf[ends[nonempty] - 1] == 13
    lengths -= has_cr
    blank = lengths == 0
    stats.lines += int(len(ends) - blank.sum())
    # Shape: exactly 40 characters, or 40 + ':' + 1..20 digits.
    with_count = (lengths > 41) & (lengths <= 61)
    colon = np.zeros(len(ends), dtype=bool)
    colon[with_count] = buf[starts[with_count] + 40] == ord(":")
    shaped = (lengths == 40) | colon
    stats.skipped["wrong length or separator"] += int((~blank & ~shaped).sum())
    idx = np.flatnonzero(shaped)
    if not len(idx):
        return np.empty(0, dtype=np.uint64)
    s = starts[idx]
    nibbles = _HEX[sliding_window_view(buf, 40)[s]]
    # Valid nibbles are 0..15 and invalid ones 255: OR eight at a time and test high bits.
    words = nibbles.view(np.uint64)
    hex_ok = ((words[:, 0] | words[:, 1] | words[:, 2] | words[:, 3] | words[:, 4]) & _HIGH_NIBBLES) == 0
    stats.skipped["not hexadecimal"] += int((~hex_ok).sum())
    # A count is all digits up to the line end: the first non-digit after the colon is
    # where the line ends (21 bytes: up to 20 digits, then CR or LF).
    padded = np.concatenate((buf, np.zeros(64, dtype=np.uint8)))
    first_other = np.argmin(_DIGIT[sliding_window_view(padded, 21)[s + 41]], axis=1)
    line_len = lengths[idx]
    count_ok = (line_len == 40) | (first_other == line_len - 41)
    stats.skipped["count is not a number"] += int((hex_ok & ~count_ok).sum())
    good = hex_ok & count_ok
    nib = nibbles[good, :16] if not good.all() else nibbles[:, :16]
    packed = np.ascontiguousarray((nib[:, 0::2] << 4) | nib[:, 1::2])
    keys = packed.view(">u8").ravel().astype(np.uint64)
    stats.keys += len(keys)
    return keys


def _password_problem(value: str) -> str | None:
    if len(value) > MAX_PASSWORD_CHARS:
        return "password longer than 256 characters"
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        return "control characters"
    return None


def parse_password_lines(data: bytes, stats: ImportStats) -> np.ndarray:
    """Keys of SHA-1(NFKC(password)) for each line; lines that are not UTF-8 are skipped."""
    out: list[int] = []
    sha1 = hashlib.sha1
    for raw in data.split(b"\n"):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            continue
        stats.lines += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            stats.skipped["not UTF-8"] += 1
            continue
        if not text.isascii():
            text = unicodedata.normalize("NFKC", text)
        problem = _password_problem(text)
        if problem:
            stats.skipped[problem] += 1
            continue
        out.append(int.from_bytes(sha1(text.encode("utf-8")).digest()[:8], "big"))
    stats.keys += len(out)
    return np.array(out, dtype=np.uint64)


def iter_keys(
    stream: BinaryIO, *, fmt: str, stats: ImportStats, progress: Progress | None = None
) -> Iterator[np.ndarray]:
    """Chunks of 64-bit keys from one input stream."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    chosen = None if fmt == "auto" else fmt
    for data in _lines_of(stream, stats, progress):
        if chosen is None:
            chosen = detect_format(data[:MAX_LINE * 4])
            stats.formats.append(chosen)
        parse = parse_hash_lines if chosen == "sha1" else parse_password_lines
        keys = parse(data, stats)
        if len(keys):
            yield keys
    if chosen is not None and fmt != "auto":
        stats.formats.append(chosen)


# ------------------------------------------------------------------ external sort
# Each run records where each of these prefix slices starts, so that the merge can read
# any group of slices with plain positioned reads (no mapping of whole runs).
SLICE_BITS = 12
_SLICE_BOUNDS = np.arange(1, 1 << SLICE_BITS, dtype=np.uint64) << np.uint64(64 - SLICE_BITS)


class _Runs:
    """Sorted, de-duplicated runs of keys in temporary files."""

    def __init__(self, folder: Path, *, run_keys: int, partition_keys: int) -> None:
        self.folder = folder
        self.run_keys = run_keys
        self.partition_keys = partition_keys
        self.paths: list[Path] = []
        self.cuts: list[np.ndarray] = []  # per run: start of each prefix slice, and its length
        self._pending: list[np.ndarray] = []
        self._pending_len = 0

    def add(self, keys: np.ndarray) -> None:
        self._pending.append(keys)
        self._pending_len += len(keys)
        if self._pending_len >= self.run_keys:
            self.flush()

    def flush(self) -> None:
        if not self._pending_len:
            return
        keys = np.concatenate(self._pending)
        self._pending, self._pending_len = [], 0
        keys.sort()
        keys = _dedupe_sorted(keys)
        path = self.folder / f"run-{len(self.paths):05d}.u64"
        keys.tofile(path)
        self.paths.append(path)
        self.cuts.append(np.concatenate(([0], np.searchsorted(keys, _SLICE_BOUNDS), [len(keys)])))

    def merge_into(self, path: Path) -> int:
        """Merge every run into one sorted, unique key file; returns the number of keys.

        Groups of consecutive prefix slices holding about ``partition_keys`` keys are read
        from every run, sorted and de-duplicated together, and appended in order.
        """
        self.flush()
        if len(self.paths) <= 1:
            if self.paths:
                os.replace(self.paths[0], path)
                return int(self.cuts[0][-1])
            path.write_bytes(b"")
            return 0
        cuts = np.stack(self.cuts)  # runs x (slices + 1)
        per_slice = (cuts[:, 1:] - cuts[:, :-1]).sum(axis=0)
        written = 0
        with open(path, "wb") as out:
            first = 0
            slices = len(per_slice)
            while first < slices:
                last, size = first, 0
                while last < slices and (last == first or size + per_slice[last] <= self.partition_keys):
                    size += int(per_slice[last])
                    last += 1
                parts = []
                # Opened per group: any number of runs, never too many open files.
                for run, cut in zip(self.paths, cuts):
                    with open(run, "rb") as handle:
                        handle.seek(8 * int(cut[first]))
                        parts.append(np.fromfile(handle, dtype=np.uint64, count=int(cut[last] - cut[first])))
                chunk = np.concatenate(parts)
                del parts
                chunk.sort(kind="stable")  # timsort: merges the already sorted runs
                chunk = _dedupe_sorted(chunk)
                chunk.tofile(out)
                written += len(chunk)
                first = last
        for p in self.paths:
            p.unlink()
        return written


def _dedupe_sorted(keys: np.ndarray) -> np.ndarray:
    if len(keys) < 2:
        return keys
    keep = np.empty(len(keys), dtype=bool)
    keep[0] = True
    np.not_equal(keys[1:], keys[:-1], out=keep[1:])
    return keys[keep]


class _KeyReader:
    """Sequential reads of a sorted key file, handed out by upper bound (bounded memory)."""

    def __init__(self, path: Path, n: int, *, chunk: int = PARTITION_KEYS) -> None:
        self._handle = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._left = n
        self._chunk = chunk
        self._buffer = np.empty(0, dtype=np.uint64)
        self.position = 0  # index of the first key not yet handed out

    def below(self, bound: int | None) -> np.ndarray:
        """Every remaining key < bound (all remaining keys when bound is None)."""
        while self._left and (bound is None or not len(self._buffer) or int(self._buffer[-1]) < bound):
            count = min(self._chunk, self._left)
            more = np.fromfile(self._handle, dtype=np.uint64, count=count)
            self._left -= len(more)
            self._buffer = np.concatenate((self._buffer, more))
        cut = len(self._buffer) if bound is None else int(np.searchsorted(self._buffer, np.uint64(bound)))
        out, self._buffer = self._buffer[:cut], self._buffer[cut:]
        self.position += len(out)
        return out

    def close(self) -> None:
        self._handle.close()


def write_filter(keys_path: Path, n: int, out_path: Path) -> int:
    """Write the filter for the sorted, unique keys in ``keys_path``; returns its size."""
    layout = Layout(k=bucket_bits(n), n=n)
    reader = _KeyReader(keys_path, n, chunk=1 << 20)
    supers: list[np.ndarray] = []
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, layout.size)
        total_buckets = layout.buckets + 1  # with the sentinel
        step = max(BUCKETS_PER_WRITE, 1 << SUPER_BITS)
        for first in range(0, total_buckets, step):
            last = min(first + step, total_buckets)
            lo = reader.position
            chunk = reader.below(None if last >= layout.buckets else last << (64 - layout.k))
            buckets, remainders = split_keys(chunk, layout.k)
            starts = bucket_starts(buckets, first, last, lo)
            sup, rel = relative_offsets(starts, first)
            supers.append(sup)
            os.pwrite(fd, rel.tobytes(), layout.rel_off + 2 * first)
            if len(remainders):
                os.pwrite(fd, remainders.tobytes(), layout.rem_off + 2 * lo)
        os.pwrite(fd, layout.header(), 0)
        os.pwrite(fd, np.concatenate(supers).astype("<u8").tobytes(), layout.super_off)
        os.fsync(fd)
    finally:
        os.close(fd)
        reader.close()
    assert HEADER_SIZE == layout.super_off
    return layout.size


def import_corpus(
    sources: Iterable[tuple[str, BinaryIO]],
    output: Path,
    *,
    fmt: str = "auto",
    extra_keys: Iterable[np.ndarray] = (),
    progress: Progress | None = None,
    work_dir: Path | None = None,
    run_keys: int = RUN_KEYS,
    partition_keys: int = PARTITION_KEYS,
) -> ImportStats:
    """Build the filter at ``output`` from every source (and ``extra_keys``), atomically.

    ``run_keys`` and ``partition_keys`` bound the memory used (8 bytes a key, twice).
    """
    stats = ImportStats()
    began = time.perf_counter()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir or output.parent, prefix=".breached-import-") as tmp:
        folder = Path(tmp)
        runs = _Runs(folder, run_keys=run_keys, partition_keys=partition_keys)
        named = 0
        for _name, stream in sources:
            named += 1
            for keys in iter_keys(stream, fmt=fmt, stats=stats, progress=progress):
                runs.add(keys)
        if named and not stats.keys:
            skipped = ", ".join(f"{c} {r}" for r, c in sorted(stats.skipped.items()) if c) or "empty input"
            raise CorpusFormatError(f"no valid line in the input ({skipped}); the corpus was left as it was")
        for keys in extra_keys:
            runs.add(np.asarray(keys, dtype=np.uint64))
        merged = folder / "merged.u64"
        stats.unique = runs.merge_into(merged)
        partial = folder / ("filter" + output.suffix)
        stats.size_bytes = write_filter(merged, stats.unique, partial)
        os.replace(partial, output)
    stats.seconds = time.perf_counter() - began
    return stats


__all__ = [
    "CorpusFormatError",
    "FORMATS",
    "ImportStats",
    "detect_format",
    "import_corpus",
    "iter_keys",
    "parse_hash_lines",
    "parse_password_lines",
]
