"""One writer per process for the chat sockets' messages and read marks.

Channels runs every ``database_sync_to_async`` call of every socket of a
process on one shared thread, with the publish waiting inside it: one process
stored ~110 messages a second (docs/PERFORMANCE.md). Here the sockets hand
their writes to this writer and wait for the answer without holding anything;
the writer takes everything that arrived while its previous batch was in the
database and stores it in one transaction (``tickets.services.chat``) on a
thread of its own, then publishes the batch's frames in one round trip
(after the commit, outside the database call) and answers each socket.
Batches grow with the load: under a trickle each message goes alone.

A batch whose kept connection was dropped (a terminated backend, a database
restart) is tried once more on a fresh one; a batch that fails again (the
database still away) fails every message in it with ``unavailable``, and the
pages keep unacknowledged messages and send them again a moment later. A
retried batch stores nothing twice (repeated client ids are answered with the
stored seq).
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from django.db import InterfaceError, OperationalError, close_old_connections, connection

from core.errors import DomainError, ServiceUnavailable
from core.loops import PerLoop
from core.realtime import send_events
from tickets.rules import Viewer
from tickets.services.chat import BatchOutcome, ChatPost, ChatRead, Stored, store_chat_batch

logger = logging.getLogger(__name__)

MAX_BATCH = 500


class Unavailable(ServiceUnavailable):
    default_detail = "The conversation could not be saved just now; it will be sent again."


@dataclass
class _Waiting:
    item: ChatPost | ChatRead
    future: asyncio.Future | None


class ChatWriter:
    def __init__(self) -> None:
        self._waiting: list[_Waiting] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chat-writer")

    async def post(self, *, viewer: Viewer, ticket_id: int, body: str, client_msg_id: str | None,
                   ip: str | None = None, device: str = "", attachment_ids: tuple[int, ...] = ()) -> Stored:
        """Store one message; raises the DomainError that refused it."""
        future = asyncio.get_running_loop().create_future()
        self._submit(_Waiting(ChatPost(viewer, ticket_id, body, client_msg_id, ip, device,
                                       attachment_ids=tuple(attachment_ids)), future))
        return await future

    def read(self, *, viewer: Viewer, ticket_id: int, seq: int) -> None:
        """Move a read mark forward (fire and forget: the others hear of it)."""
        self._submit(_Waiting(ChatRead(viewer, ticket_id, seq), None))

    def close(self, *, wait: bool = False) -> None:
        """Give the thread's kept connection back and let the thread end: for
        a writer whose event loop is gone (tests' loops come and go; a served
        process keeps its one writer as long as it runs)."""
        self._executor.submit(_close_connection)
        self._executor.shutdown(wait=wait)

    def _submit(self, waiting: _Waiting) -> None:
        self._waiting.append(waiting)
        self._wake.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="chat-writer")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                outcome = await self._store(loop, batch)
                if outcome is None:
                    continue
                await send_events(outcome.events)
                posts = [w for w in batch if isinstance(w.item, ChatPost)]
                slow = []
                for waiting, result in zip(posts, outcome.results):
                    if result is None:
                        slow.append(waiting)
                    else:
                        _settle(waiting.future, result)
                for waiting in slow:  # rare: a reply that moves the ticket, or a closed one
                    try:
                        stored = await loop.run_in_executor(self._executor, _post_one, waiting.item)
                    except DomainError as refused:
                        _settle(waiting.future, refused)
                    except Exception as error:
                        logger.warning("chat post failed: %s: %s", type(error).__name__, error)
                        _settle(waiting.future, Unavailable())
                    else:
                        _settle(waiting.future, stored)

    async def _store(self, loop: asyncio.AbstractEventLoop, batch: list[_Waiting]) -> BatchOutcome | None:
        """Store the batch; on a dropped connection once more on a fresh one. When
        that fails too (the database away), every message in it is refused for
        now with ``unavailable`` and None is returned."""
        for attempt in (1, 2):
            try:
                return await loop.run_in_executor(self._executor, _store, batch)
            except (OperationalError, InterfaceError) as error:
                failure = error
                if attempt == 1:
                    continue
            except Exception as error:  # noqa: BLE001 - the writer must outlive any batch
                failure = error
            break
        logger.warning("chat batch of %d failed: %s: %s", len(batch), type(failure).__name__, failure)
        for waiting in batch:
            if waiting.future is not None and not waiting.future.done():
                waiting.future.set_exception(Unavailable())
        return None


def _settle(future: asyncio.Future, result) -> None:
    """Answer a post's future, unless its socket went away meanwhile (the
    awaiting task was cancelled, and with it the future): setting a result on
    a done future raises, and would stop the writer for every other socket."""
    if future.done():
        return
    if isinstance(result, BaseException):
        future.set_exception(result)
    else:
        future.set_result(result)


def _store(batch: list[_Waiting]) -> BatchOutcome:
    # the writer's thread keeps its connection between batches (a batch is often
    # one message at a human pace: giving the connection back to the pool and
    # taking it again cost more than the message); one that failed is dropped
    try:
        return store_chat_batch(posts=[w.item for w in batch if isinstance(w.item, ChatPost)],
                                reads=[w.item for w in batch if isinstance(w.item, ChatRead)])
    except Exception:
        connection.close()
        raise
    finally:
        if connection.errors_occurred:
            connection.close_if_unusable_or_obsolete()


def _close_connection() -> None:
    connection.close()


def _post_one(post: ChatPost) -> Stored:
    """Through the full service (its own transaction; it publishes after commit)."""
    from accounts.models import User
    from tickets.events import message_payload
    from tickets.services.messages import post_message

    close_old_connections()
    try:
        user = User.objects.get(pk=post.viewer.user_id)
        message = post_message(actor=user, ticket_id=post.ticket_id, body=post.body, client_msg_id=post.client_msg_id,
                               ip=post.ip, device=post.device, attachment_ids=list(post.attachment_ids))
        return Stored(seq=message.seq, payload=message_payload(message))
    finally:
        close_old_connections()


# this event loop's writer (one per process under an ASGI server); a test loop's, once closed, is
# closed when the next loop makes its own
writer = PerLoop(ChatWriter, retire=lambda stale: stale.close())


def close_writers() -> None:
    """Close every writer (the end of a test session: the database can be dropped)."""
    writer.retire_all(lambda gone: gone.close(wait=True))
