"""Realtime payloads this app emits: the market board's ``board`` frame.

The frame goes to the ``board`` group (``tickets.events.BOARD``), which only
supervisors' console sockets join; the dashboard page redraws its charts from
it. Figures only, no labels (each page names them in its own language)::

    {"type": "board", "at": ISO, "start": ISO, "bucket_min": 5, "minute_start": ISO,
     "inflow": SERIES (per minute, 60 points), "categories": [{"code", ...SERIES}],
     "waiting": SERIES + {"now", "longest_wait_s"}, "first_reply_s": SERIES,
     "csat": SERIES, "spend": SERIES (per hour, cumulative fen) + {"budget_fen"},
     "breaker_open": bool}

    SERIES = {"today": [...], "yesterday": [...], "last_week": [...],
              "threshold": number | null, "below": bool, "crossed": n, "alert": bool}

``crossed`` counts today's points past the threshold; ``alert`` is true when
one of the last five minutes' is (the tile's red headline on a wall screen).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from core.realtime import send_now
from incidents import rules, selectors
from tickets.events import BOARD


def thresholds() -> dict[str, Any]:
    """The board's thresholds: ``settings.BOARD_THRESHOLDS`` and the inflow's own setting."""
    return {"inflow_per_min": settings.DASHBOARD_INFLOW_ALERT_PER_MIN, **settings.BOARD_THRESHOLDS}


def series(today: list, yesterday: list, last_week: list, *, threshold, below: bool = False,
           recent: int = 1) -> dict[str, Any]:
    hot = [rules.crossed(v, threshold, below=below) for v in today]
    return {"today": list(today), "yesterday": list(yesterday), "last_week": list(last_week),
            "threshold": threshold or None, "below": below, "crossed": sum(hot), "alert": any(hot[-recent:])}


def board_payload(board: selectors.Dashboard) -> dict[str, Any]:
    limits = thresholds()
    budget_fen = board.budget.budget_fen if board.budget else 0
    spend_limit = budget_fen * limits["spend_percent"] // 100 if budget_fen and limits["spend_percent"] else None
    waiting = board.waiting
    return {
        "type": "board",
        "at": board.now.isoformat(),
        "start": board.start.isoformat(),
        "bucket_min": selectors.BUCKET_MIN,
        "inflow": series([v for _, v in board.inflow], board.inflow_yesterday, board.inflow_last_week,
                         threshold=limits["inflow_per_min"], recent=selectors.BUCKET_MIN),
        "categories": [{"code": code, **series(t.today, t.yesterday, t.last_week,
                                               threshold=limits["category_per_bucket"])}
                       for code, t in board.categories.items()],
        "waiting": {**series(waiting.today, waiting.yesterday, waiting.last_week, threshold=limits["waiting_chats"]),
                    "now": board.waiting_chats, "longest_wait_s": board.longest_wait_s},
        "first_reply_s": series(board.first_reply_s.today, board.first_reply_s.yesterday,
                                board.first_reply_s.last_week, threshold=limits["first_reply_s"]),
        "csat": series(board.csat.today, board.csat.yesterday, board.csat.last_week,
                       threshold=limits["csat_below"], below=True),
        "spend": {**series(board.spend_days.today, board.spend_days.yesterday, board.spend_days.last_week,
                           threshold=spend_limit), "budget_fen": budget_fen or None},
        "breaker_open": bool(board.budget and board.budget.breaker_open),
    }


def push_board() -> int:
    """Read the board (on the replica) and wake the supervisors' consoles with
    it; returns the frame's size in bytes (the periodic job logs it)."""
    import json

    payload = board_payload(selectors.dashboard())
    send_now([BOARD], payload)
    return len(json.dumps(payload))
