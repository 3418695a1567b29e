"""Streaming import: both input formats, bounded memory, and bad input skipped with a count."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest

from idp.breached.filter import CompactFilter, CorpusFormatError
from idp.breached.importer import detect_format, import_corpus
from tests.unit.breached.test_filter import generated_hibp

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def sha1_line(password: str, count: int = 3, *, lower: bool = False) -> bytes:
    digest = hashlib.sha1(password.encode()).hexdigest()
    return f"{digest if lower else digest.upper()}:{count}\r\n".encode()


def build(tmp_path, data: bytes, **options):  # type: ignore[no-untyped-def]
    path = tmp_path / "corpus.idpbf"
    stats = import_corpus([("input", io.BytesIO(data))], path, **options)
    return CompactFilter.open(path), stats


def test_pwned_passwords_lines_are_imported(tmp_path):
    corpus, stats = build(tmp_path, sha1_line("hunter2") + sha1_line("letmein", 99) + b"\r\n")
    assert stats.formats == ["sha1"]
    assert stats.unique == 2 and stats.skipped_total == 0
    assert corpus.contains("hunter2") and corpus.contains("letmein")
    assert not corpus.contains("hunter3")


def test_lines_without_count_and_lower_case_hex_are_accepted(tmp_path):
    bare = hashlib.sha1(b"swordfish").hexdigest().upper().encode() + b"\n"
    corpus, stats = build(tmp_path, bare + sha1_line("dragon", lower=True))
    assert stats.unique == 2 and corpus.contains("swordfish") and corpus.contains("dragon")


def test_bad_lines_are_skipped_and_counted_never_fatal(tmp_path):
    junk = b"".join(
        [
            sha1_line("good one"),
            b"Z" * 40 + b":1\n",  # not hex
            b"ABCDEF:1\n",  # wrong length
            b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8;1\n",  # wrong separator
            b"5BAA61E4C9B93F3F0682250B6CF8331B7EE68FD8:12x\n",  # count not a number
            bytes(b for b in range(256) if b != 10) + b"\n",  # binary junk
            b"A" * 1_000_000 + b"\n",  # a huge line
            sha1_line("another good one"),
        ]
    )
    corpus, stats = build(tmp_path, junk, fmt="sha1")
    assert stats.unique == 2
    assert stats.skipped_total == 6
    assert stats.skipped["not hexadecimal"] == 1
    assert stats.skipped["count is not a number"] == 1
    assert corpus.contains("good one") and corpus.contains("another good one")
    assert "6 skipped" in stats.summary()


def test_a_line_longer_than_a_read_block_is_skipped_without_holding_it(tmp_path):
    huge = b"B" * (20 << 20)  # longer than the 8 MiB read block, no newline for 20 MiB
    corpus, stats = build(tmp_path, sha1_line("before") + huge + b"\n" + sha1_line("after"), fmt="sha1")
    assert stats.skipped["longer than 4096 bytes"] == 1
    assert corpus.contains("before") and corpus.contains("after")


def test_input_with_no_valid_line_is_refused_and_leaves_the_corpus_alone(tmp_path):
    path = tmp_path / "corpus.idpbf"
    import_corpus([("first", io.BytesIO(sha1_line("kept")))], path)
    before = path.read_bytes()
    with pytest.raises(CorpusFormatError, match="no valid line"):
        import_corpus([("junk", io.BytesIO(b"\x00\x01\x02" * 100 + b"\nnot a hash\n"))], path, fmt="sha1")
    assert path.read_bytes() == before


def test_plain_password_lists_are_hashed_after_nfkc(tmp_path):
    data = "password\r\nhunter2\n\n\uff21\uff22\uff23-fullwidth\n".encode() + b"\xff\xfe broken\n\x01control\n"
    corpus, stats = build(tmp_path, data)
    assert stats.formats == ["plain"]
    assert stats.unique == 3
    assert stats.skipped["not UTF-8"] == 1 and stats.skipped["control characters"] == 1
    assert corpus.contains("password") and corpus.contains("hunter2")
    assert corpus.contains("ABC-fullwidth")  # NFKC, as the policy normalises passwords


def test_format_detection_looks_at_the_first_line():
    assert detect_format(sha1_line("x")) == "sha1"
    assert detect_format(b"\n\n" + sha1_line("x")) == "sha1"
    assert detect_format(b"password\n" + sha1_line("x")) == "plain"


def test_many_runs_and_partitions_give_the_same_filter_as_one(tmp_path):
    """Bounded memory: tiny runs and partitions force the external sort through every step."""
    data, keys = generated_hibp(200_000, seed=11)
    duplicated = data + data[: 46 * 50_000]  # duplicates across runs are removed
    one = tmp_path / "one.idpbf"
    many = tmp_path / "many.idpbf"
    import_corpus([("g", io.BytesIO(duplicated))], one)
    stats = import_corpus([("g", io.BytesIO(duplicated))], many, run_keys=17_000, partition_keys=9_000)
    assert stats.unique == len(np.unique(keys))
    assert one.read_bytes() == many.read_bytes()
    assert CompactFilter.open(many).contains_keys(keys).all()


def test_skewed_input_is_refused_with_a_clear_error(tmp_path):
    """Hashes made up to share a prefix would overflow the index: say so instead."""
    lines = b"".join(b"00000000" + f"{i:08X}".encode() + b"0" * 24 + b":1\n" for i in range(70_000))
    with pytest.raises(CorpusFormatError, match="not uniformly distributed"):
        build(tmp_path, lines)


def test_several_sources_and_extra_keys_are_merged(tmp_path):
    path = tmp_path / "corpus.idpbf"
    extra = np.array([0x5BAA61E4C9B93F3F], dtype=np.uint64)  # "password"
    stats = import_corpus(
        [("a", io.BytesIO(sha1_line("from a"))), ("b", io.BytesIO(b"from b\n"))], path, extra_keys=[extra]
    )
    corpus = CompactFilter.open(path)
    assert stats.unique == 3
    assert corpus.contains("from a") and corpus.contains("from b") and corpus.contains("password")
