"""``core.loops.PerLoop``: one object per running event loop, the closed
loops' given back."""

import asyncio

from core.loops import PerLoop


def test_one_per_event_loop_and_a_closed_loop_s_retired_when_the_next_is_made():
    retired = []
    get = PerLoop(object, retire=retired.append)

    async def twice():
        return get(), get()

    first = asyncio.run(twice())
    assert first[0] is first[1] and retired == []
    second = asyncio.run(twice())
    assert second[0] is second[1] and second[0] is not first[0]
    assert retired == [first[0]]  # the first loop closed: its object given back once the second made its own


def test_retire_all_gives_every_one_back_with_the_closer_asked_for():
    kept, closed = [], []
    get = PerLoop(object, retire=kept.append)
    made = [asyncio.run(_made_on_a_loop(get))]
    get.retire_all(closed.append)
    assert closed == made and kept == []
    get.retire_all(closed.append)  # nothing left
    assert closed == made


async def _made_on_a_loop(get):
    return get()
