"""The compact breached-password filter: sorted 16-bit remainders behind a bucket index.

Why this structure (measured: benchmarks/RESULTS.md)
----------------------------------------------------
Every entry is the leading 64 bits of SHA-1(password) (the Pwned Passwords corpus is
published as SHA-1). The leading ``k`` bits choose one of ``2^k`` buckets; the next 16
bits are the entry's *remainder*. The file holds, per bucket, where its remainders
start, and then all remainders sorted by (bucket, remainder). A lookup reads one index
pair and scans the two to four remainders of one bucket: two cache lines.

With ``k = floor(log2(n / 2))`` a bucket holds ``lambda = n / 2^k`` entries on average,
``2 <= lambda < 4``. A password that is not in the corpus lands in a bucket of about
``lambda`` entries, each matching its remainder with probability ``2^-16``, so

    false-positive rate  ~  lambda / 2^16    in [1/32768, 1/16384)   (target <= 1/10000)
    bits per entry        =  16 + 16 / lambda + 64 / (4096 * lambda)  in (20, 24]  (target <= 24)

The bucket index is a 16-bit offset per bucket relative to its superblock of 4096
buckets, plus a 64-bit absolute offset per superblock (about 16k entries each, far
below the 65535 a 16-bit offset allows for uniform SHA-1 input; skewed input is refused
with a clear error instead of being silently mis-indexed).

Alternatives weighed: a 16-bit binary fuse filter needs about 18 bits per entry at a
false-positive rate of 2^-16, but it is built by peeling a hypergraph that must fit in
memory whole (or be sharded), which fights the bounded-memory streaming import; an
8-bit fuse or xor filter (FPR 1/256) misses the target; a Bloom filter at 1/10,000 needs
19.2 bits and 13 random probes per lookup. This layout is what an external sort by
hash prefix produces anyway, so the import streams: runs sorted in bounded memory,
merged partition by partition, written once (idp/breached/importer.py).

The file is opened read-only with ``mmap``: every worker process maps the same pages of
the page cache, so N workers cost the memory of one copy.

File layout (little-endian): a 64-byte header (magic, k, superblock bits, n, section
offsets), then ``uint64 super[(2^k >> 12) + 1]``, ``uint16 rel[2^k + 1]`` and
``uint16 rem[n]``. The extra bucket ``2^k`` is a sentinel whose start is ``n``.
"""

from __future__ import annotations

import hashlib
import mmap
import os
import struct
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"IDPBF\x00\x01\x00"
HEADER = struct.Struct("<8sIIQQQQ")  # magic, k, super_bits, n, super_off, rel_off, rem_off
HEADER_SIZE = 64
SUPER_BITS = 12
REMAINDER_BITS = 16
SUFFIX = ".idpbf"


class CorpusFormatError(ValueError):
    """A filter file that is not ours, truncated, or built from input that is not SHA-1."""


def password_key(password: str) -> int:
    """The leading 64 bits of SHA-1 of the UTF-8 password (callers normalise it first)."""
    return int.from_bytes(hashlib.sha1(password.encode("utf-8", "surrogatepass")).digest()[:8], "big")


def bucket_bits(n: int) -> int:
    """``floor(log2(n / 2))``, at least 1: every bucket then holds 2 to 4 entries on average."""
    return max(1, (max(n, 2) // 2).bit_length() - 1)


@dataclass(frozen=True)
class Layout:
    k: int
    n: int

    @property
    def buckets(self) -> int:
        return 1 << self.k

    @property
    def supers(self) -> int:
        return (self.buckets >> SUPER_BITS) + 1

    @property
    def super_off(self) -> int:
        return HEADER_SIZE

    @property
    def rel_off(self) -> int:
        return self.super_off + 8 * self.supers

    @property
    def rem_off(self) -> int:
        # Keeps the remainder array 8-byte aligned, which costs at most 6 bytes.
        return (self.rel_off + 2 * (self.buckets + 1) + 7) & ~7

    @property
    def size(self) -> int:
        return self.rem_off + 2 * self.n

    def header(self) -> bytes:
        raw = HEADER.pack(MAGIC, self.k, SUPER_BITS, self.n, self.super_off, self.rel_off, self.rem_off)
        return raw.ljust(HEADER_SIZE, b"\x00")


def split_keys(keys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Bucket numbers and 16-bit remainders of sorted 64-bit keys."""
    buckets = keys >> np.uint64(64 - k)
    remainders = ((keys >> np.uint64(64 - k - REMAINDER_BITS)) & np.uint64(0xFFFF)).astype("<u2")
    return buckets, remainders


def bucket_starts(buckets: np.ndarray, first: int, last: int, base: int) -> np.ndarray:
    """Absolute start of each bucket in [first, last) given the sorted buckets found there."""
    wanted = np.arange(first, last, dtype=np.uint64)
    return np.searchsorted(buckets, wanted, side="left").astype(np.int64) + base


def relative_offsets(starts: np.ndarray, first: int) -> tuple[np.ndarray, np.ndarray]:
    """(superblock starts, 16-bit offsets) for buckets ``first, first+1, ...``.

    ``first`` is a multiple of the superblock size, so the chunk holds whole superblocks
    (the last one may be cut short at the end of the table).
    """
    per = 1 << SUPER_BITS
    supers = starts[::per]
    rel = starts - np.repeat(supers, per)[: len(starts)]
    if len(rel) and int(rel.max()) > 0xFFFF:
        raise CorpusFormatError(
            "over 65535 entries share one block of hash prefixes: the input is not uniformly"
            " distributed SHA-1 (was it sorted, filtered or made up?)"
        )
    return supers, rel.astype("<u2")


def build_bytes(keys: np.ndarray) -> bytes:
    """A whole filter in memory from sorted, unique 64-bit keys (small corpora, tests)."""
    layout = Layout(k=bucket_bits(len(keys)), n=len(keys))
    buckets, remainders = split_keys(keys, layout.k)
    # Buckets 0 .. 2^k inclusive: the sentinel 2^k starts at n (every bucket is below it).
    starts = bucket_starts(buckets, 0, layout.buckets + 1, 0)
    supers, rel = relative_offsets(starts, 0)
    return layout.header() + b"".join(
        (
            supers.astype("<u8").tobytes(),
            rel.tobytes(),
            bytes(layout.rem_off - layout.rel_off - 2 * (layout.buckets + 1)),
            remainders.tobytes(),
        )
    )


class CompactFilter:
    """Read-only view of a filter held in ``bytes`` or a shared read-only ``mmap``."""

    def __init__(self, buffer: bytes | mmap.mmap, *, source: str = "memory") -> None:
        if sys.byteorder != "little":  # pragma: no cover - every supported server is little-endian
            raise CorpusFormatError("the breached-password filter is read natively on little-endian hosts only")
        self.source = source
        self._buffer = buffer
        if len(buffer) < HEADER_SIZE:
            raise CorpusFormatError(f"{source}: too short to be a breached-password filter")
        magic, k, super_bits, n, super_off, rel_off, rem_off = HEADER.unpack_from(buffer, 0)
        if magic != MAGIC:
            raise CorpusFormatError(f"{source}: not a breached-password filter (bad magic); import the corpus again")
        layout = Layout(k=k, n=n)
        if not 1 <= k <= 40 or super_bits != SUPER_BITS or (super_off, rel_off, rem_off) != (
            layout.super_off, layout.rel_off, layout.rem_off
        ) or len(buffer) != layout.size:
            raise CorpusFormatError(f"{source}: damaged or truncated breached-password filter; import the corpus again")
        self.k = k
        self.n = n
        view = memoryview(buffer)
        self._super = view[super_off:rel_off].cast("Q")
        self._rel = view[rel_off : rel_off + 2 * (layout.buckets + 1)].cast("H")
        self._rem = view[rem_off : rem_off + 2 * n].cast("H")
        self._bucket_shift = 64 - k
        self._rem_shift = 64 - k - REMAINDER_BITS
        self.size_bytes = layout.size

    @classmethod
    def open(cls, path: Path) -> CompactFilter:
        """Map a filter file read-only; the pages are shared with every other process."""
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size < HEADER_SIZE:
                raise CorpusFormatError(f"{path}: too short to be a breached-password filter")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return cls(mapped, source=str(path))

    @classmethod
    def from_keys(cls, keys: np.ndarray, *, source: str = "memory") -> CompactFilter:
        unique = np.unique(np.asarray(keys, dtype=np.uint64))
        return cls(build_bytes(unique), source=source)

    @property
    def bits_per_entry(self) -> float:
        return 8 * self.size_bytes / self.n if self.n else 0.0

    @property
    def expected_false_positive_rate(self) -> float:
        return self.n / float(1 << (self.k + REMAINDER_BITS))

    def __len__(self) -> int:
        return self.n

    def contains_key(self, key: int) -> bool:
        bucket = key >> self._bucket_shift
        wanted = (key >> self._rem_shift) & 0xFFFF
        nxt = bucket + 1
        start = self._super[bucket >> SUPER_BITS] + self._rel[bucket]
        end = self._super[nxt >> SUPER_BITS] + self._rel[nxt]
        rem = self._rem
        # min(): a file overwritten in place under a live mapping (use mv, never cp, to
        # replace a corpus; the importer does) must not turn into an IndexError here.
        for i in range(start, min(end, self.n)):  # 2-4 entries, sorted
            value = rem[i]
            if value >= wanted:
                return value == wanted
        return False

    def contains(self, password: str) -> bool:
        """Exact lookup of an already normalised password."""
        return self.contains_key(password_key(password))

    def contains_keys(self, keys: np.ndarray) -> np.ndarray:
        """Vectorised ``contains_key`` for many keys at once (measurements, audits)."""
        keys = np.asarray(keys, dtype=np.uint64)
        buckets, wanted = split_keys(keys, self.k)
        sup = np.frombuffer(self._super, dtype="<u8").astype(np.int64)
        rel = np.frombuffer(self._rel, dtype="<u2").astype(np.int64)
        rem = np.frombuffer(self._rem, dtype="<u2")
        b = buckets.astype(np.int64)
        start = sup[b >> SUPER_BITS] + rel[b]
        end = sup[(b + 1) >> SUPER_BITS] + rel[b + 1]
        found = np.zeros(len(keys), dtype=bool)
        width = int((end - start).max()) if len(keys) else 0
        for j in range(width):
            pos = start + j
            live = pos < end
            hit = np.zeros(len(keys), dtype=bool)
            hit[live] = rem[pos[live]] == wanted[live]
            found |= hit
        return found
