"""Property tests on the held-funds arithmetic."""

from hypothesis import given
from hypothesis import strategies as st

from merchants.escrow import Figures

fen = st.integers(min_value=0, max_value=10**12)


@given(pending=fen, available=fen, deposit=fen, holds=fen)
def test_identities_hold_and_withdrawable_is_never_negative(pending, available, deposit, holds):
    f = Figures(pending, available, deposit, holds)
    assert f.withdrawable_fen >= 0
    assert f.withdrawable_fen == max(0, available - max(0, holds - deposit))
    assert f.covered_by_deposit_fen + f.spill_fen == holds
    assert f.frozen_from_available_fen + f.uncovered_fen == f.spill_fen
    assert f.withdrawable_fen + f.frozen_from_available_fen == available
    assert 0 <= f.frozen_from_available_fen <= available
    assert f.withdrawable_fen <= available


@given(available=fen, deposit=fen, holds=st.lists(st.integers(min_value=1, max_value=10**9), max_size=20))
def test_releasing_a_hold_never_lowers_withdrawable(available, deposit, holds):
    f = Figures(0, available, deposit, sum(holds))
    for amount in holds:
        freed = f.without_hold(amount)
        assert freed.withdrawable_fen >= f.withdrawable_fen
        assert freed.withdrawable_fen - f.withdrawable_fen <= amount


def test_the_example_of_the_issue():
    f = Figures(pending_fen=0, available_fen=500_000, deposit_fen=100_000, holds_total_fen=130_000)
    assert (f.spill_fen, f.frozen_from_available_fen, f.withdrawable_fen) == (30_000, 30_000, 470_000)
