"""The ASGI worker production runs (``cs_portal.gunicorn``): uvicorn's, with
permessage-deflate turned off.

Browsers offer the compression extension on every websocket and uvicorn
accepts it by default. A chat frame is a few hundred bytes of JSON, which
deflate barely shrinks, while each socket keeps a compressor and a
decompressor: measured with 1,000 sockets offering it (``bench/chat.py
--deflate``), 49 MB more memory across the workers (≈ 50 KB per socket, most of
a socket's cost), 2–4 % more server CPU and a higher delivery p99 (94–96 ms
against 78–82 ms). At a peak of hundreds of thousands of open pages memory
per socket is what a machine runs out of, so the sockets go uncompressed.
"""

from __future__ import annotations

from uvicorn_worker import UvicornWorker


class Worker(UvicornWorker):
    CONFIG_KWARGS = {**UvicornWorker.CONFIG_KWARGS, "ws_per_message_deflate": False}
