"""The corpus service: shipped list until an import, re-import noticed, damage tolerated."""

from __future__ import annotations

import io
import os

import pytest

from idp.breached.importer import import_corpus
from idp.breached.service import CorpusChecker, shipped_filter, shipped_passwords
from tests.fixtures import hibp_lines

pytestmark = pytest.mark.backend_independent  # tests/conftest.py


def test_the_shipped_list_has_at_least_ten_thousand_breached_passwords():
    words = shipped_passwords()
    assert len(words) >= 10_000
    corpus = shipped_filter()
    assert all(corpus.contains(w) for w in words[:2000])
    assert corpus.contains("Password") and corpus.contains("QWERTY")  # derived spellings


def test_without_an_import_the_shipped_list_answers(tmp_path):
    checker = CorpusChecker(path=tmp_path / "absent.idpbf", reload_seconds=0)
    assert checker.is_breached("123456")
    assert not checker.is_breached("ferret mandolin quietly orbits")


def test_a_re_import_is_noticed_without_a_restart(tmp_path):
    path = tmp_path / "corpus.idpbf"
    checker = CorpusChecker(path=path, reload_seconds=0)
    assert not checker.is_breached("ferret mandolin quietly orbits")
    import_corpus([("g", io.BytesIO(hibp_lines(["ferret mandolin quietly orbits"], filler=100)))], path)
    assert checker.is_breached("ferret mandolin quietly orbits")


def test_a_damaged_corpus_keeps_the_previous_one_in_use(tmp_path, caplog):
    path = tmp_path / "corpus.idpbf"
    import_corpus([("g", io.BytesIO(hibp_lines(["ferret mandolin quietly orbits"], filler=100)))], path)
    checker = CorpusChecker(path=path, reload_seconds=0)
    assert checker.is_breached("ferret mandolin quietly orbits")
    damaged = tmp_path / "damaged.idpbf"
    damaged.write_bytes(b"garbage" * 100)
    os.replace(damaged, path)  # replaced as a whole, as the importer and mv do
    assert checker.is_breached("ferret mandolin quietly orbits")
    assert "unusable" in caplog.text
