"""One object per running event loop: ``PerLoop``.

A served process has one event loop, and a process-wide helper that waits on
it (the chat writer, the sockets' batched reads) must belong to that loop. The
tests start a loop per test: a helper of a loop since closed is given to
``retire`` when the next one is made, and ``retire_all`` gives every one back
(the end of a test session, before the database is dropped).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class PerLoop:
    def __init__(self, make: Callable[[], Any], *, retire: Callable[[Any], None] | None = None) -> None:
        self._make = make
        self._retire = retire
        self._made: dict[asyncio.AbstractEventLoop, Any] = {}

    def __call__(self) -> Any:
        """The running loop's, made on first use."""
        loop = asyncio.get_running_loop()
        found = self._made.get(loop)
        if found is None:
            found = self._made[loop] = self._make()
            for stale in [other for other in self._made if other.is_closed()]:
                gone = self._made.pop(stale)
                if self._retire is not None:
                    self._retire(gone)
        return found

    def retire_all(self, retire: Callable[[Any], None] | None = None) -> None:
        """Give back every loop's (with ``retire``, else the one given at construction)."""
        retire = retire or self._retire
        while self._made:
            gone = self._made.popitem()[1]
            if retire is not None:
                retire(gone)
