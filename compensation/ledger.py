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

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import F

from core.locks import lock
from compensation.models import LedgerEntry, LedgerHead, Remedy

GENESIS = "0" * 64


def chain_of(remedy_id: int) -> int:
    return remedy_id % settings.LEDGER_CHAINS


def entry_hash(*, prev_hash: str, remedy_id: int, account: str, amount_fen: int, memo: str) -> str:
    payload = f"{prev_hash}|{remedy_id}|{account}|{amount_fen}|{memo}"
    return hashlib.sha256(payload.encode()).hexdigest()


def _lock_head(chain: int) -> LedgerHead:
    assert transaction.get_connection().in_atomic_block, "the ledger is written inside the remedy's transaction"
    head = lock(LedgerHead.objects, "ledger_head").filter(chain=chain).first()
    if head is None:  # a chain beyond those the migration made (LEDGER_CHAINS raised)
        LedgerHead.objects.get_or_create(chain=chain, defaults={"pk": chain + 1})
        head = lock(LedgerHead.objects, "ledger_head").get(chain=chain)
    return head


def post(*, remedy: Remedy, lines: list[tuple[str, int, str]], now: datetime) -> list[LedgerEntry]:
    """Append ``(account, amount_fen, memo)`` lines for one remedy; they must
    sum to zero. Three statements: lock the chain's head, insert the entries,
    move the head."""
    if sum(amount for _, amount, _ in lines) != 0:
        raise ValueError("ledger lines of a remedy must balance")
    chain = chain_of(remedy.pk)
    head = _lock_head(chain)
    entries, prev = [], head.last_hash
    for account, amount, memo in lines:
        digest = entry_hash(prev_hash=prev, remedy_id=remedy.pk, account=account, amount_fen=amount, memo=memo)
        entries.append(LedgerEntry(remedy=remedy, chain=chain, account=account, amount_fen=amount, memo=memo,
                                   created_at=now, prev_hash=prev, hash=digest))
        prev = digest
    LedgerEntry.objects.bulk_create(entries)
    LedgerHead.objects.filter(pk=head.pk).update(last_hash=prev, entries=F("entries") + len(entries))
    return entries


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
