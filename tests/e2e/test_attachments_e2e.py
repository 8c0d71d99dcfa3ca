"""End to end in headless Chromium (issue #13 item 3): a buyer whose parcel
arrived crushed attaches a photo in the chat, sees its thumbnail chip, sends it
with a line of text; the agent's console shows the thumbnail in the
conversation, linking to the full picture.

The upload is real (the page's fetch to the API on the live server); the live
server is plain WSGI, so the chat socket is played by the test through
Playwright's websocket routing: it receives the page's frame, stores it the way
the chat writer does (``post_message`` with the frame's ``attachment_ids``) and
answers with the ack and the stored message's frame.
"""

from __future__ import annotations

import io
import json
import re
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.helpers import orm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

PASSWORD = "pass-12345-word"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def _photo() -> bytes:
    """A 'photo' of a crushed brown box, with EXIF as a phone writes it."""
    image = Image.new("RGB", (960, 720), (236, 232, 224))
    box = Image.new("RGB", (560, 400), (176, 126, 74))
    image.paste(box, (200, 160))
    image.paste((120, 84, 48), (200, 160, 760, 200))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def _data():
    from accounts import roles
    from accounts.tests.factories import UserFactory
    from merchants.tests.factories import MerchantFactory, OrderFactory
    from tickets.tests.factories import ticket_in_state

    agent = UserFactory(role=roles.AGENT, username="agent_att", display_name="王芳")
    buyer = UserFactory(role=roles.BUYER, username="buyer_att", display_name="林晓雨")
    order = OrderFactory(buyer=buyer, merchant=MerchantFactory(name="优品数码旗舰店"))
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, category="parcel_damaged",
                             channel="chat", subject="包裹破损", body="快递到了，箱子被压坏了")
    return ticket.pk, buyer.pk


def _store(frame: dict, buyer_id: int, ticket_id: int) -> dict:
    """What the chat writer does with the frame: store it, answer its frame."""
    from accounts.models import User
    from tickets import events, services

    message = services.post_message(actor=User.objects.get(pk=buyer_id), ticket_id=ticket_id, body=frame["body"],
                                    client_msg_id=frame["client_msg_id"], attachment_ids=frame["attachment_ids"])
    return events.message_payload(message)


def _login(context, url: str, username: str, landing: str):
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/accounts/login/?next={landing}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(re.escape(landing) + "$"))
    return page, errors


def test_buyer_attaches_a_photo_and_the_agent_sees_it(live_server, chromium, settings, tmp_path):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MEDIA_ROOT = str(tmp_path / "media")
    ticket_id, buyer_id = orm(_data)

    # --- the buyer's chat ------------------------------------------------------------
    buyer_context = chromium.new_context(viewport={"width": 420, "height": 860}, locale="zh-CN",
                                         timezone_id="Asia/Shanghai")
    buyer_context.set_default_timeout(15_000)
    received: list[dict] = []
    sockets = []

    def on_chat(ws):
        sockets.append(ws)
        ws.on_message(lambda message: received.append(json.loads(message)))

    buyer_context.route_web_socket(re.compile(r".*/ws/tickets/\d+/chat/.*"), on_chat)
    buyer_context.route_web_socket(re.compile(r".*/ws/console/$"), lambda ws: None)
    page, buyer_errors = _login(buyer_context, live_server.url, "buyer_att", "/chat/")
    page.goto(f"{live_server.url}/chat/{ticket_id}/")
    assert page.locator("label[for=chat-attach]").get_attribute("title") == "添加图片或 PDF"
    page.set_input_files("#chat-attach", files=[{"name": "IMG_0042.jpg", "mimeType": "image/jpeg",
                                                  "buffer": _photo()}])
    chip = page.locator("#chat-chips .att-chip img")
    chip.wait_for()
    assert "/thumbnail/" in chip.get_attribute("src")
    page.fill("#chat-input", "箱子压坏了，照片在这里")
    page.click("#chat-send button[type=submit]")
    # the pending bubble shows the picture at once
    page.locator("#chat-log .bubble.pending .att-image img").wait_for()
    assert page.locator("#chat-chips").is_hidden()

    # the socket (played here) gets the frame with the attachment's id, stores it, answers
    deadline = time.monotonic() + 10
    while not any(f.get("type") == "message" for f in received) and time.monotonic() < deadline:
        page.wait_for_timeout(100)
    frame = next(f for f in received if f.get("type") == "message")
    assert frame["body"] == "箱子压坏了，照片在这里" and len(frame["attachment_ids"]) == 1
    stored = orm(lambda: _store(frame, buyer_id, ticket_id))
    sockets[-1].send(json.dumps({"type": "ack", "client_msg_id": frame["client_msg_id"], "seq": stored["seq"]}))
    sockets[-1].send(json.dumps(stored, ensure_ascii=False))
    shown = page.locator(f"#chat-log .bubble[data-seq='{stored['seq']}'] .att-image img")
    shown.wait_for()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=shown.element_handle())
    # acknowledged and shown with its seq: the pending copy is gone
    page.wait_for_function("() => !document.querySelector('#chat-log .bubble.pending')")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "chat-attachment.png"))
    assert buyer_errors == []
    buyer_context.close()

    # --- the agent's console -----------------------------------------------------------
    agent_context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN",
                                         timezone_id="Asia/Shanghai")
    agent_context.set_default_timeout(15_000)
    agent_context.route_web_socket(re.compile(r".*/ws/.*"), lambda ws: None)
    console, agent_errors = _login(agent_context, live_server.url, "agent_att", "/console/")
    console.goto(f"{live_server.url}/console/tickets/{ticket_id}/")
    thumb = console.locator(f"#conversation #msg-{stored['seq']} .att-image img")
    thumb.wait_for()
    console.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    attachment_id = frame["attachment_ids"][0]
    assert console.locator(f"#msg-{stored['seq']} a.att-image").get_attribute("href") == f"/api/v1/attachments/{attachment_id}/"
    # the console's reply box has its own attach button
    assert console.locator("label[for=reply-attach]").is_visible()
    assert agent_errors == []
    agent_context.close()
