"""``core.batched``: questions asked within a window answered by one read, each
with its own key's value, never from a read that started before it was asked."""

import asyncio

import pytest

from core.batched import BatchedRead


class Reads:
    """A ``read_many`` that records each read (its keys, when it started) and
    answers ``key * 10`` for every key but the missing ones."""

    def __init__(self, *, missing=(), takes_s: float = 0.0, fails: int = 0) -> None:
        self.calls: list[tuple[list, float]] = []
        self.missing, self.takes_s, self.fails = set(missing), takes_s, fails

    async def __call__(self, keys: list) -> dict:
        self.calls.append((list(keys), asyncio.get_running_loop().time()))
        await asyncio.sleep(self.takes_s)
        if self.fails:
            self.fails -= 1
            raise ConnectionError("the database went away")
        return {key: key * 10 for key in keys if key not in self.missing}


async def test_questions_within_the_window_are_one_read_each_answered_with_its_own_value():
    reads = Reads(missing={3})
    batched = BatchedRead(reads, window_s=0.05)
    answers = await asyncio.gather(batched(1), batched(2), batched(3), batched(2))
    assert answers == [10, 20, None, 20]  # a key asked twice is read once, both askers answered
    assert [sorted(keys) for keys, _ in reads.calls] == [[1, 2, 3]]


async def test_a_question_asked_while_a_read_is_out_waits_for_the_next_read():
    reads = Reads(takes_s=0.1)
    batched = BatchedRead(reads, window_s=0.01)
    loop = asyncio.get_running_loop()
    first = asyncio.ensure_future(batched(1))
    await asyncio.sleep(0.05)  # the first read is out now
    asked_at = loop.time()
    second, late = await asyncio.gather(first, batched(1))
    assert (second, late) == (10, 10)
    assert len(reads.calls) == 2 and reads.calls[1][1] >= asked_at  # its read began after it was asked


async def test_nothing_waits_longer_than_the_window_for_its_read_to_start_and_a_lone_question_is_read_alone():
    reads = Reads()
    batched = BatchedRead(reads, window_s=0.05)
    loop = asyncio.get_running_loop()
    asked_at = loop.time()
    assert await batched(7) == 70
    assert [keys for keys, _ in reads.calls] == [[7]] and 0.04 <= reads.calls[0][1] - asked_at < 0.5
    assert await batched(8) == 80  # after the task ended, the next question starts another
    assert [keys for keys, _ in reads.calls] == [[7], [8]]


async def test_a_failed_read_fails_each_of_its_askers_and_the_next_read_works():
    reads = Reads(fails=1)
    batched = BatchedRead(reads, window_s=0.01)
    outcomes = await asyncio.gather(batched(1), batched(2), return_exceptions=True)
    assert [type(outcome) for outcome in outcomes] == [ConnectionError, ConnectionError]
    assert await batched(1) == 10


async def test_an_asker_gone_meanwhile_does_not_stop_the_others():
    reads = Reads(takes_s=0.05)
    batched = BatchedRead(reads, window_s=0.01)
    gone = asyncio.ensure_future(batched(1))
    staying = asyncio.ensure_future(batched(1))
    await asyncio.sleep(0.03)  # the read is out
    gone.cancel()
    assert await staying == 10
    assert gone.cancelled()


async def test_a_large_window_is_read_in_batches_of_at_most_max_batch():
    reads = Reads()
    batched = BatchedRead(reads, window_s=0.01, max_batch=4)
    answers = await asyncio.gather(*(batched(key) for key in range(10)))
    assert answers == [key * 10 for key in range(10)]
    assert [len(keys) for keys, _ in reads.calls] == [4, 4, 2]


@pytest.mark.parametrize("window_s", [0.0, 0.02])
async def test_many_askers_at_any_window_all_get_answers(window_s):
    reads = Reads(takes_s=0.005)
    batched = BatchedRead(reads, window_s=window_s)
    answers = await asyncio.gather(*(batched(key % 7) for key in range(200)))
    assert answers == [(key % 7) * 10 for key in range(200)]
    assert [sorted(keys) for keys, _ in reads.calls] == [list(range(7))]  # asked together: one read
