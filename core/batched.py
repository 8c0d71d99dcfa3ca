"""Many coroutines' reads of one kind, answered by one call: ``BatchedRead``.

A process serves thousands of sockets, and some of their frames each ask the
database one small question by primary key (a chat page's ``sync`` every 20 s:
the last seq of its ticket the viewer may see). Asked one by one, each costs a
trip to the thread pool, a pooled connection and a statement of its own, for a
row PostgreSQL finds in microseconds. Here the questions that arrive within
``window_s`` of the first go together: one trip and one statement for all of
them, each asker answered with its own key's value (None when the read found
nothing for it). A question is never answered from an earlier read: a read
starts after every question in it was asked, so an answer is as fresh as one
asked alone, only up to ``window_s`` later.

One instance per event loop (``core.loops.PerLoop``); everything but
``read_many`` runs on the loop's thread.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class BatchedRead:
    def __init__(self, read_many: Callable[[list], Awaitable[dict]], *, window_s: float, max_batch: int = 500) -> None:
        """``read_many(keys)``: a coroutine returning ``{key: value}`` for the
        keys it found."""
        self._read_many = read_many
        self._window_s = window_s
        self._max_batch = max_batch
        self._waiting: dict[Hashable, list[asyncio.Future]] = {}
        self._task: asyncio.Task | None = None

    async def __call__(self, key: Hashable) -> Any:
        future = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="batched-read")
        return await future

    async def _run(self) -> None:
        try:
            while self._waiting:
                await asyncio.sleep(self._window_s)
                while self._waiting:
                    keys = list(itertools.islice(self._waiting, self._max_batch))
                    batch = {key: self._waiting.pop(key) for key in keys}
                    try:
                        found = await self._read_many(keys)
                    except Exception as error:  # each asker gets the failure, as if it had asked alone
                        for futures in batch.values():
                            for future in futures:
                                if not future.done():
                                    future.set_exception(error)
                        continue
                    except BaseException:
                        for futures in batch.values():
                            for future in futures:
                                future.cancel()
                        raise
                    for key, futures in batch.items():
                        value = found.get(key)
                        for future in futures:
                            if not future.done():  # its socket went away meanwhile
                                future.set_result(value)
        finally:
            self._task = None
            if self._waiting:  # the task was cancelled (its loop closing): nobody is left to answer them
                for future in itertools.chain.from_iterable(self._waiting.values()):
                    future.cancel()
                self._waiting.clear()

