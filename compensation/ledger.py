"""The append-only ledger: entries balanced per remedy, chained by hash.

The ledger is ``LEDGER_CHAINS`` hash chains side by side, not one: a remedy's
entries go on chain ``remedy_id % LEDGER_CHAINS``, whose head row it locks
(after the order, before a refund's merchant account and the day's budget,
in the global lock order). One chain was a row that every remedy on the
platform locked and held until commit; with 16, parallel remedies rarely
meet. Each chain is verifiable on its own exactly as the single chain was
(``manage.py verify_ledger``): within a chain, entries are appended under
its head's lock, so id order is append order. Entries written before the
chains existed are chain 0.
"""

from __future__ import annotations

import functools
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction

from core.locks import taking
from core import rows
from core.rows import column, table, write
from compensation.models import LedgerEntry, LedgerHead, Remedy

GENESIS = "0" * 64


def chain_of(remedy_id: int) -> int:
    return remedy_id % settings.LEDGER_CHAINS


def entry_hash(*, prev_hash: str, remedy_id: int, account: str, amount_fen: int, memo: str) -> str:
    payload = f"{prev_hash}|{remedy_id}|{account}|{amount_fen}|{memo}"
    return hashlib.sha256(payload.encode()).hexdigest()


def post(*, remedy: Remedy, lines: list[tuple[str, int, str]], now: datetime) -> None:
    """Append ``(account, amount_fen, memo)`` lines for one remedy; they must
    sum to zero. Inside the remedy's transaction: lock the chain's head, then
    insert the entries and move the head, on PostgreSQL in one statement (a
    round trip less for every remedy that posts; inside the remedy's
    ``sent_together`` it goes with the next statement), elsewhere in two. They are
    written once per process (every executed remedy posts; the ORM spent more
    CPU building them than PostgreSQL spent running them)."""
    if sum(amount for _, amount, _ in lines) != 0:
        raise ValueError("ledger lines of a remedy must balance")
    if not lines:
        return
    chain = chain_of(remedy.pk)
    head_id, prev = _lock_head(chain)
    created_at = connection.ops.adapt_datetimefield_value(now)
    params = []
    for account, amount, memo in lines:
        digest = entry_hash(prev_hash=prev, remedy_id=remedy.pk, account=account, amount_fen=amount, memo=memo)
        params += [remedy.pk, chain, account, amount, memo, created_at, prev, digest]
        prev = digest
    move = [prev, len(lines), head_id]
    # unread: inside the remedy's rows.sent_together they go with its next statement
    if connection.vendor == "postgresql":
        write(_insert_and_move_sql(len(lines)), params + move)
    else:
        write(_insert_sql(connection.vendor, len(lines)), params)
        write(_move_head_sql(connection.vendor), move)


def _lock_head(chain: int) -> tuple[int, str]:
    """The chain's head row (its id and last hash), locked until commit."""
    assert transaction.get_connection().in_atomic_block, "the ledger is written inside the remedy's transaction"
    taking("ledger_head")
    with rows.cursor() as cursor:
        cursor.execute(_lock_head_sql(connection.vendor), [chain])
        row = cursor.fetchone()
    if row is None:  # a chain beyond those the migration made (LEDGER_CHAINS raised)
        LedgerHead.objects.get_or_create(chain=chain, defaults={"pk": chain + 1})
        return _lock_head(chain)
    return row[0], row[1]


_ENTRY_FIELDS = ("remedy", "chain", "account", "amount_fen", "memo", "created_at", "prev_hash", "hash")


@functools.cache
def _lock_head_sql(vendor: str) -> str:
    return (f"SELECT {column(LedgerHead, 'id')}, {column(LedgerHead, 'last_hash')} FROM {table(LedgerHead)} "
            f"WHERE {column(LedgerHead, 'chain')} = %s{rows.for_update()}")


@functools.cache
def _insert_sql(vendor: str, rows: int) -> str:
    values = "(" + ", ".join(["%s"] * len(_ENTRY_FIELDS)) + ")"
    return (f"INSERT INTO {table(LedgerEntry)} ({', '.join(column(LedgerEntry, name) for name in _ENTRY_FIELDS)}) "
            f"VALUES {', '.join([values] * rows)}")


@functools.cache
def _insert_and_move_sql(rows: int) -> str:
    # PostgreSQL runs a data-modifying WITH once and to completion, read or not
    return f"WITH entries AS ({_insert_sql('postgresql', rows)}) {_move_head_sql('postgresql')}"


@functools.cache
def _move_head_sql(vendor: str) -> str:
    entries = column(LedgerHead, "entries")
    return (f"UPDATE {table(LedgerHead)} SET {column(LedgerHead, 'last_hash')} = %s, {entries} = {entries} + %s "
            f"WHERE {column(LedgerHead, 'id')} = %s")


@dataclass
class Verification:
    entries: int = 0
    chains: int = 0
    broken_links: list[int] = field(default_factory=list)
    bad_hashes: list[int] = field(default_factory=list)
    unbalanced_remedies: list[int] = field(default_factory=list)
    head_mismatches: list[int] = field(default_factory=list)  # chains whose head is not their last entry

    @property
    def head_mismatch(self) -> bool:
        return bool(self.head_mismatches)

    @property
    def ok(self) -> bool:
        return not (self.broken_links or self.bad_hashes or self.unbalanced_remedies or self.head_mismatches)


def verify(*, chunk: int = 5000) -> Verification:
    """Walk every chain in id order: every link, every hash, every remedy's
    balance, and each chain's head."""
    result = Verification()
    sums: dict[int, int] = defaultdict(int)
    last_of: dict[int, str] = {}
    last_key = (-1, 0)
    while True:
        chain, last_id = last_key
        rows = list(
            LedgerEntry.objects.filter(chain__gte=chain).exclude(chain=chain, id__lte=last_id)
            .order_by("chain", "id")[:chunk]
        )
        if not rows:
            break
        for entry in rows:
            result.entries += 1
            prev = last_of.get(entry.chain, GENESIS)
            if entry.prev_hash != prev:
                result.broken_links.append(entry.pk)
            expected = entry_hash(prev_hash=entry.prev_hash, remedy_id=entry.remedy_id, account=entry.account,
                                  amount_fen=entry.amount_fen, memo=entry.memo)
            if entry.hash != expected:
                result.bad_hashes.append(entry.pk)
            last_of[entry.chain] = entry.hash
            sums[entry.remedy_id] += entry.amount_fen
        last_key = (rows[-1].chain, rows[-1].pk)
    result.unbalanced_remedies = sorted(r for r, total in sums.items() if total != 0)
    heads = {head.chain: head.last_hash for head in LedgerHead.objects.all()}
    result.chains = len(set(heads) | set(last_of))
    for chain in sorted(set(heads) | set(last_of)):
        if heads.get(chain, GENESIS) != last_of.get(chain, GENESIS):
            result.head_mismatches.append(chain)
    return result
