"""The arithmetic of held funds, in one place (pure functions, integer fen).

Holds are covered by the deposit first; the part of all holds above the
deposit freezes the available balance:

    withdrawable = available − max(0, holds − deposit), never below zero
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figures:
    pending_fen: int
    available_fen: int
    deposit_fen: int
    holds_total_fen: int

    @property
    def covered_by_deposit_fen(self) -> int:
        return min(self.holds_total_fen, self.deposit_fen)

    @property
    def spill_fen(self) -> int:
        """The part of the holds the deposit does not cover."""
        return max(0, self.holds_total_fen - self.deposit_fen)

    @property
    def frozen_from_available_fen(self) -> int:
        return min(self.available_fen, self.spill_fen)

    @property
    def uncovered_fen(self) -> int:
        """Spill-over larger than the available balance (owed, nothing left to freeze)."""
        return self.spill_fen - self.frozen_from_available_fen

    @property
    def withdrawable_fen(self) -> int:
        return max(0, self.available_fen - self.spill_fen)

    def without_hold(self, amount_fen: int) -> Figures:
        """The figures if a hold of ``amount_fen`` were released."""
        return Figures(self.pending_fen, self.available_fen, self.deposit_fen, max(0, self.holds_total_fen - amount_fen))
