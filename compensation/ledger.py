"""The append-only ledger: entries balanced per remedy, chained by hash."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from compensation.locks import lock_ledger_head
from compensation.models import LedgerEntry, Remedy

GENESIS = "0" * 64


def entry_hash(*, prev_hash: str, remedy_id: int, account: str, amount_fen: int, memo: str) -> str:
    payload = f"{prev_hash}|{remedy_id}|{account}|{amount_fen}|{memo}"
    return hashlib.sha256(payload.encode()).hexdigest()


def post(*, remedy: Remedy, lines: list[tuple[str, int, str]], now: datetime) -> list[LedgerEntry]:
    """Append ``(account, amount_fen, memo)`` lines for one remedy; they must
    sum to zero. Locks the chain's head last (global lock order)."""
    if sum(amount for _, amount, _ in lines) != 0:
        raise ValueError("ledger lines of a remedy must balance")
    head = lock_ledger_head()
    entries = []
    for account, amount, memo in lines:
        digest = entry_hash(prev_hash=head.last_hash, remedy_id=remedy.pk, account=account, amount_fen=amount, memo=memo)
        entries.append(LedgerEntry.objects.create(
            remedy=remedy, account=account, amount_fen=amount, memo=memo, created_at=now,
            prev_hash=head.last_hash, hash=digest,
        ))
        head.last_hash = digest
        head.entries += 1
    head.save(update_fields=["last_hash", "entries"])
    return entries


@dataclass
class Verification:
    entries: int = 0
    broken_links: list[int] = field(default_factory=list)
    bad_hashes: list[int] = field(default_factory=list)
    unbalanced_remedies: list[int] = field(default_factory=list)
    head_mismatch: bool = False

    @property
    def ok(self) -> bool:
        return not (self.broken_links or self.bad_hashes or self.unbalanced_remedies or self.head_mismatch)


def verify(*, chunk: int = 5000) -> Verification:
    """Walk the chain in id order: every link, every hash, every remedy's balance."""
    from compensation.models import LedgerHead

    result = Verification()
    prev = GENESIS
    sums: dict[int, int] = defaultdict(int)
    last_id = 0
    while True:
        rows = list(LedgerEntry.objects.filter(id__gt=last_id).order_by("id")[:chunk])
        if not rows:
            break
        for entry in rows:
            result.entries += 1
            if entry.prev_hash != prev:
                result.broken_links.append(entry.pk)
            expected = entry_hash(prev_hash=entry.prev_hash, remedy_id=entry.remedy_id, account=entry.account,
                                  amount_fen=entry.amount_fen, memo=entry.memo)
            if entry.hash != expected:
                result.bad_hashes.append(entry.pk)
            prev = entry.hash
            sums[entry.remedy_id] += entry.amount_fen
        last_id = rows[-1].pk
    result.unbalanced_remedies = sorted(r for r, total in sums.items() if total != 0)
    head = LedgerHead.objects.filter(pk=1).first()
    result.head_mismatch = (head.last_hash if head else GENESIS) != prev
    return result
