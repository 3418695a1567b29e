"""Balances and the ledger, in one SQLite file.

Every change of a balance is one ledger entry written in the same transaction, so the
ledger is the history of the balance (the opening credit, then one debit per payment).
A payment is identified by (payer, payee, reference): the same reference paid again is
answered with the first payment and charges nothing (a client retrying after a lost
answer must not pay twice); the same reference with another amount is a conflict.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    sub        TEXT PRIMARY KEY,
    balance    INTEGER NOT NULL CHECK (balance >= 0),
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    id            TEXT NOT NULL UNIQUE,
    sub           TEXT NOT NULL REFERENCES accounts (sub),
    kind          TEXT NOT NULL CHECK (kind IN ('opening', 'debit')),
    amount        INTEGER NOT NULL CHECK (amount > 0),
    payee         TEXT,
    reference     TEXT,
    balance_after INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    UNIQUE (sub, payee, reference)
);
"""


class InsufficientFunds(Exception):
    pass


class ReferenceConflict(Exception):
    """The reference was already used for a different payment."""


@dataclass(frozen=True)
class Entry:
    id: str
    sub: str
    kind: str
    amount: int
    payee: str | None
    reference: str | None
    balance_after: int
    created_at: int


@dataclass(frozen=True)
class Payment:
    entry: Entry
    replayed: bool  # True: this reference was paid before; nothing was charged now


class Ledger:
    def __init__(self, path: Path, *, opening_balance: int) -> None:
        self.path = path
        self.opening_balance = opening_balance
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        try:
            db.executescript(SCHEMA)  # its own transaction: executescript commits first
        finally:
            db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # One connection per unit of work; BEGIN IMMEDIATE takes the write lock up front,
        # so two payments of one person never both read the same balance.
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE")
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        finally:
            db.close()

    def _open(self, db: sqlite3.Connection, sub: str) -> int:
        row = db.execute("SELECT balance FROM accounts WHERE sub = ?", (sub,)).fetchone()
        if row is not None:
            return int(row["balance"])
        now = int(time.time())
        db.execute("INSERT INTO accounts (sub, balance, created_at) VALUES (?, ?, ?)",
                   (sub, self.opening_balance, now))
        if self.opening_balance > 0:
            db.execute(
                "INSERT INTO entries (id, sub, kind, amount, balance_after, created_at) VALUES (?, ?, 'opening', ?, ?, ?)",
                (_new_id("open_"), sub, self.opening_balance, self.opening_balance, now),
            )
        return self.opening_balance

    def balance(self, sub: str) -> int:
        """The balance; a person the wallet has not seen yet gets an account with the opening credit."""
        with self._transaction() as db:
            return self._open(db, sub)

    def pay(self, *, sub: str, payee: str, reference: str, amount: int) -> Payment:
        with self._transaction() as db:
            balance = self._open(db, sub)
            row = db.execute(
                "SELECT * FROM entries WHERE sub = ? AND payee = ? AND reference = ?", (sub, payee, reference)
            ).fetchone()
            if row is not None:
                if row["amount"] != amount:
                    raise ReferenceConflict(reference)
                return Payment(_entry(row), replayed=True)
            if amount > balance:
                raise InsufficientFunds()
            entry = Entry(
                id=_new_id("pay_"), sub=sub, kind="debit", amount=amount, payee=payee, reference=reference,
                balance_after=balance - amount, created_at=int(time.time()),
            )
            db.execute("UPDATE accounts SET balance = ? WHERE sub = ?", (entry.balance_after, sub))
            db.execute(
                "INSERT INTO entries (id, sub, kind, amount, payee, reference, balance_after, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.id, sub, entry.kind, amount, payee, reference, entry.balance_after, entry.created_at),
            )
            return Payment(entry, replayed=False)

    def entries(self, sub: str) -> list[Entry]:
        """The person's ledger, oldest first."""
        with self._transaction() as db:
            rows = db.execute("SELECT * FROM entries WHERE sub = ? ORDER BY seq", (sub,)).fetchall()
        return [_entry(r) for r in rows]


def _entry(row: sqlite3.Row) -> Entry:
    return Entry(**{k: row[k] for k in Entry.__dataclass_fields__})


def _new_id(prefix: str) -> str:
    # Random, not the row number: ids go to clients and must not reveal how many payments exist.
    return prefix + secrets.token_urlsafe(12)
