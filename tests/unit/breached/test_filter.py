"""The compact filter: exact for members, false positives within 1/10,000, compact."""

from __future__ import annotations

import io
import os
import secrets
import time

import numpy as np
import pytest

from idp.breached.filter import CompactFilter, CorpusFormatError, password_key
from idp.breached.importer import import_corpus

pytestmark = pytest.mark.backend_independent  # tests/conftest.py

HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)


def generated_hibp(count: int, seed: int) -> tuple[bytes, np.ndarray]:
    """``count`` random SHA-1 lines in the download format, and their 64-bit keys."""
    raw = np.random.default_rng(seed).integers(0, 256, size=(count, 20), dtype=np.uint8)
    lines = np.empty((count, 46), dtype=np.uint8)
    lines[:, 0:40:2] = HEX[raw >> 4]
    lines[:, 1:40:2] = HEX[raw & 15]
    lines[:, 40:44] = np.frombuffer(b":123", dtype=np.uint8)
    lines[:, 44:46] = np.frombuffer(b"\r\n", dtype=np.uint8)
    keys = np.ascontiguousarray(raw[:, :8]).view(">u8").ravel().astype(np.uint64)
    return lines.tobytes(), keys


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> tuple[CompactFilter, np.ndarray]:
    data, keys = generated_hibp(1_000_000, seed=7)
    path = tmp_path_factory.mktemp("corpus") / "million.idpbf"
    stats = import_corpus([("generated", io.BytesIO(data))], path)
    assert stats.unique == 1_000_000 and stats.skipped_total == 0
    return CompactFilter.open(path), keys


def test_false_positive_rate_is_within_one_in_ten_thousand(million):
    corpus, _keys = million
    trials = 1_000_000
    passwords = [secrets.token_urlsafe(12) for _ in range(trials)]
    false_positives = sum(corpus.contains(p) for p in passwords)
    rate = false_positives / trials
    print(f"\nFPR {rate:.2e} ({false_positives}/{trials}); expected {corpus.expected_false_positive_rate:.2e};"
          f" {corpus.bits_per_entry:.2f} bits/entry")
    assert rate <= 1 / 10_000


def test_every_imported_hash_is_found(million):
    corpus, keys = million
    assert corpus.contains_keys(keys).all()
    assert all(corpus.contains_key(int(k)) for k in keys[:: 97])


def test_at_most_24_bits_per_entry(million):
    corpus, _ = million
    assert len(corpus) == 1_000_000
    assert corpus.bits_per_entry <= 24


def test_lookup_is_fast_in_process(million):
    corpus, _ = million
    samples = []
    for _ in range(20_000):
        password = secrets.token_urlsafe(12)
        began = time.perf_counter_ns()
        corpus.contains(password)
        samples.append(time.perf_counter_ns() - began)
    samples.sort()
    p99_us = samples[int(len(samples) * 0.99)] / 1000
    assert p99_us < 50, p99_us


def test_vectorised_and_single_lookups_agree(million):
    corpus, keys = million
    rng = np.random.default_rng(3)
    probe = np.concatenate([keys[:5000], rng.integers(0, 2**64, size=50_000, dtype=np.uint64)])
    assert corpus.contains_keys(probe).tolist() == [corpus.contains_key(int(k)) for k in probe]


@pytest.mark.parametrize("count", [0, 1, 2, 3, 7, 4095, 4096, 9000])
def test_small_and_edge_sizes_are_exact_for_members(count):
    rng = np.random.default_rng(count)
    keys = np.unique(rng.integers(0, 2**64, size=count, dtype=np.uint64))
    corpus = CompactFilter.from_keys(keys)
    assert all(corpus.contains_key(int(k)) for k in keys)
    assert not corpus.contains("a password that is not there")


def test_password_key_is_the_leading_64_bits_of_sha1():
    # SHA-1("password") = 5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8
    assert password_key("password") == 0x5BAA61E4C9B93F3F


def test_a_file_that_is_not_a_filter_is_refused(tmp_path):
    bogus = tmp_path / "bogus.idpbf"
    bogus.write_bytes(os.urandom(4096))
    with pytest.raises(CorpusFormatError, match="not a breached-password filter"):
        CompactFilter.open(bogus)


def test_a_truncated_filter_is_refused(tmp_path):
    data, _ = generated_hibp(5000, seed=1)
    path = tmp_path / "c.idpbf"
    import_corpus([("g", io.BytesIO(data))], path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorpusFormatError, match="damaged or truncated"):
        CompactFilter.open(path)
