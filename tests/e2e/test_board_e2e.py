"""End to end in headless Chromium: the team lead opens the market board on
the demo data, sees every trend tile drawn (today against yesterday and last
week, the thresholds dashed), then a ``board`` frame arrives over the console
socket with the chats waiting past their threshold: the tile turns red and the
figure changes without a reload; the wall-screen mode shows it. Screenshot
for the README (docs/screenshots/board.png).

The live server is WSGI, so the console socket is routed in the browser
(``page.route_web_socket``) and the frame the test sends is the one the server
would push: ``incidents.events.board_payload`` of the seeded database, with
the waiting chats raised."""

from __future__ import annotations

import json
import random
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from incidents import events, selectors

from tests.e2e.helpers import orm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, reset_sequences=True), pytest.mark.timeout(180)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def demo_data(transactional_db, monkeypatch):
    # seeded with the clock at 06:00 local time: the demo gives agent2 7 h 05 worked and has agent2
    # take a ticket, which the shift limit refuses once 7 h 05 fit into today (from 07:05 on)
    from django.utils import timezone

    real_now = timezone.now
    local = timezone.localtime(real_now())
    with monkeypatch.context() as clock:
        clock.setattr(timezone, "now", lambda: real_now() + (local.replace(hour=6, minute=0) - local))
        call_command("seed_demo", demo_database=True, stdout=StringIO())  # tests run with DEBUG off
    # and a busy hour today, yesterday and last week (chats, replies, ratings, remedies)
    from accounts.models import User
    from incidents.tests.test_market_board import seeded

    seeded(User.objects.get(username="buyer1"), User.objects.get(username="agent1"), timezone.now(),
           random.Random(11), n=400)


def test_board_redraws_from_a_pushed_frame_and_shows_a_crossed_threshold(live_server, demo_data, browser_page):
    page = browser_page
    sockets = []

    def on_socket(ws):
        sockets.append(ws)
        ws.on_message(lambda message: ws.send(json.dumps({"type": "pong"})) if "ping" in str(message) else None)

    page.route_web_socket(re.compile(r".*/ws/console/$"), on_socket)
    page.route_web_socket(re.compile(r".*/ws/tickets/.*"), lambda ws: None)
    page.goto(f"{live_server.url}/console/dashboard/")
    page.fill("#id_username", "lead1")
    page.fill("#id_password", "demo12345")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/dashboard/$"))

    # every trend tile is drawn from the figures the page carries
    for chart in ("inflow", "waiting", "first_reply_s", "csat", "spend"):
        page.locator(f'svg[data-chart="{chart}"] [data-trend="yesterday"]').first.wait_for(state="attached")
    assert page.locator('svg[data-chart="waiting"] [data-trend="today"]').count() == 1
    shown = orm(lambda: events.board_payload(selectors.dashboard()))
    for tile in ("inflow", "waiting", "first_reply_s", "csat", "spend"):
        assert ("is-alert" in page.locator(f'[data-tile="{tile}"]').get_attribute("class").split()) == shown[tile]["alert"]
    assert page.locator("[data-categories] .mini-trend").count() == len(shown["categories"]) == 3
    page.wait_for_function("() => document.querySelector('#live-status[data-state=open]') !== null")
    assert sockets, "the console socket is open"

    # a frame as the server pushes it, with 42 chats waiting against a threshold of 20
    frame = orm(lambda: events.board_payload(selectors.dashboard()))
    waiting = frame["waiting"]
    waiting["today"] = [5, 6, 8, 7, 9, 11, 12, 10, 14, 17, 25, 42]
    waiting.update(now=42, longest_wait_s=754, threshold=20, crossed=2, alert=True)
    sockets[0].send(json.dumps(frame))
    page.locator('[data-tile="waiting"].is-alert').wait_for()
    assert page.locator('[data-figure="waiting-chats"]').inner_text() == "42"
    assert page.locator('[data-figure="longest-wait"]').inner_text() == "12:34"
    assert page.locator('svg[data-chart="waiting"] .hot-point').count() == 2
    assert page.locator('[data-tile="waiting"] [data-crossed-count]').inner_text() == "2"
    assert page.locator('svg[data-chart="waiting"] [data-threshold="20"]').count() == 1
    assert page.locator("#dashboard").get_attribute("data-updated") == frame["at"]

    # the wall screen: the button still works, the alert is readable from afar
    page.set_viewport_size({"width": 1920, "height": 1080})
    page.click('[data-fullscreen="#board"]')
    page.wait_for_function(
        "() => document.fullscreenElement !== null || document.querySelector('#board.is-wall') !== null")
    title = page.locator('[data-tile="waiting"] > h2')
    assert float(title.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 24
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "board.png"))
    assert page.errors == []
