"""The breached-password corpus: compact filter, streaming importer, optional range API.

- ``filter``: the memory-mapped structure and why it was chosen (docstring there).
- ``importer``: ``SHA1HEX:COUNT`` and plain lists into a filter, in bounded memory.
- ``service``: the ``BreachedPasswords`` implementations chosen by settings.
- ``range_api``: the optional, off-by-default Pwned Passwords range API client.
"""

from idp.breached.filter import CompactFilter, CorpusFormatError, password_key
from idp.breached.importer import ImportStats, import_corpus
from idp.breached.service import CorpusChecker, WithRangeApi, build_breached, shipped_filter, shipped_keys

__all__ = [
    "CompactFilter",
    "CorpusChecker",
    "CorpusFormatError",
    "ImportStats",
    "WithRangeApi",
    "build_breached",
    "import_corpus",
    "password_key",
    "shipped_filter",
    "shipped_keys",
]
