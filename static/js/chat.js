/* The buyer's chat over /ws/tickets/<id>/chat/?after_seq=N.
 * Lossless from the page's side: every frame carries its seq and the page
 * keeps the highest it has shown; a reconnect (with backoff) asks for what
 * came after it. What the buyer typed waits in an outbox (sessionStorage)
 * with a client id until the server acknowledges it, so nothing typed is lost
 * and nothing is sent twice. The page tells how far the buyer has read
 * (a "read" frame) and ticks the buyer's own messages once staff have read them. */
(function () {
  "use strict";
  const body = document.body;
  if (!body.hasAttribute("data-chat")) return;
  const ticketId = body.dataset.ticketId;
  const me = body.dataset.userId;
  const t = JSON.parse(document.getElementById("chat-i18n").textContent);
  const log = document.getElementById("chat-log");
  const status = document.getElementById("chat-status");
  const typing = document.getElementById("typing");
  const form = document.getElementById("chat-send");
  const input = document.getElementById("chat-input");
  const outboxKey = `chat-outbox-${ticketId}`;
  let lastSeq = Number(body.dataset.lastSeq || 0);
  let socket = null, attempts = 0, typingTimer = null, sentRead = 0, lastTyping = 0;
  const SYNC_MS = 20000; // a lost wake-up is caught within this (the server replays from the database)

  const outbox = () => JSON.parse(sessionStorage.getItem(outboxKey) || "[]");
  const saveOutbox = (items) => sessionStorage.setItem(outboxKey, JSON.stringify(items));

  function setStatus(state, text) { status.dataset.state = state; status.textContent = text; }

  function bubble(frame, pending) {
    const li = document.createElement("li");
    const role = frame.author ? frame.author.role : "buyer";
    li.className = `bubble from-${role}` + (String(frame.author && frame.author.id) === me || pending ? " mine" : "") + (pending ? " pending" : "");
    if (frame.seq) li.dataset.seq = frame.seq;
    if (pending) li.dataset.clientId = frame.client_msg_id;
    const who = document.createElement("span"); who.className = "who";
    who.textContent = role === "system" ? t.system : (frame.author ? frame.author.name : "");
    li.append(who);
    if (frame.body) { const text = document.createElement("span"); text.className = "body"; text.textContent = frame.body; li.append(text); }
    if (frame.attachments && frame.attachments.length && window.CSAttach) li.append(CSAttach.renderList(frame.attachments, t));
    const time = document.createElement("time");
    time.textContent = pending ? t.pending : new Date(frame.created_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    li.append(time);
    return li;
  }

  function show(frame) {
    if (frame.seq <= lastSeq) return; // already on the page
    lastSeq = frame.seq;
    const pending = frame.client_msg_id && log.querySelector(`[data-client-id="${CSS.escape(frame.client_msg_id)}"]`);
    if (pending) pending.remove();
    for (const acked of log.querySelectorAll(".bubble.pending[data-ack-seq]")) if (Number(acked.dataset.ackSeq) <= frame.seq) acked.remove();
    log.append(bubble(frame, false));
    log.lastElementChild.scrollIntoView({ block: "end" });
    markRead();
  }

  function markRead() {
    if (document.hidden || lastSeq <= sentRead || !socket || socket.readyState !== WebSocket.OPEN) return;
    sentRead = lastSeq;
    socket.send(JSON.stringify({ type: "read", seq: lastSeq }));
  }

  function showRead(seq) {
    // tick the buyer's newest message the other side has read
    const mine = Array.from(log.querySelectorAll(".bubble.mine[data-seq]")).filter((li) => Number(li.dataset.seq) <= seq);
    for (const li of log.querySelectorAll(".bubble.is-read")) li.classList.remove("is-read");
    const last = mine.pop();
    if (last) { last.classList.add("is-read"); last.title = t.read; }
  }

  function flushOutbox() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    for (const item of outbox()) {
      const frame = { type: "message", body: item.body, client_msg_id: item.id };
      if (item.attachments && item.attachments.length) frame.attachment_ids = item.attachments.map((a) => a.id);
      socket.send(JSON.stringify(frame));
    }
  }

  // 'unavailable' (the database away for a moment, the socket still open): what
  // the outbox holds goes again in 1-2 s, then less often; an ack resets it.
  // Without this, the last thing a buyer typed during an outage waited for
  // their next message or a reconnect.
  let retryTimer = null, retries = 0;
  function retrySoon() {
    if (retryTimer) return;
    const delay = Math.min(10000, 1000 * 2 ** retries) * (1 + Math.random());
    retries = Math.min(retries + 1, 4);
    retryTimer = setTimeout(() => { retryTimer = null; flushOutbox(); }, delay);
  }

  // 1012 (a server restarting) and 1013 (its channel layer away for a moment):
  // come back at once, spread over a second so a whole server's clients do not
  // arrive together, and keep trying every second for half a minute (a restart
  // refuses connections for a moment); anything else: exponential backoff with jitter
  let restartingUntil = 0;
  function reconnectDelay(code) {
    if (code === 1012 || code === 1013) restartingUntil = Date.now() + 30000;
    if (Date.now() < restartingUntil) { attempts = 0; return 200 + Math.random() * 800; }
    const delay = Math.min(30000, 1000 * 2 ** attempts) * (0.5 + Math.random() / 2);
    attempts = Math.min(attempts + 1, 10);
    return delay;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}/ws/tickets/${ticketId}/chat/?after_seq=${lastSeq}`);
    socket.addEventListener("open", () => { attempts = 0; sentRead = 0; setStatus("open", t.live); flushOutbox(); markRead(); });
    socket.addEventListener("message", (event) => {
      let frame; try { frame = JSON.parse(event.data); } catch (e) { return; }
      if (frame.type === "message") { show(frame); typing.hidden = true; }
      else if (frame.type === "ack") {
        retries = 0;
        saveOutbox(outbox().filter((item) => item.id !== frame.client_msg_id));
        // stored: the message itself comes (or came) as its frame with its seq; frames
        // carry no client id, so the pending copy goes here, unless nothing showed it yet
        const pending = frame.client_msg_id && log.querySelector(`.bubble.pending[data-client-id="${CSS.escape(frame.client_msg_id)}"]`);
        if (pending && frame.seq <= lastSeq) pending.remove();
        else if (pending) pending.dataset.ackSeq = frame.seq;
      }
      else if (frame.type === "error" && frame.code === "unavailable") retrySoon();
      else if (frame.type === "error" && frame.code === "attachment_unavailable") dropRefused(frame.detail);
      else if (frame.type === "read" && frame.author && frame.author.role !== "buyer") showRead(frame.seq);
      else if (frame.type === "typing") { typing.hidden = false; clearTimeout(typingTimer); typingTimer = setTimeout(() => { typing.hidden = true; }, 4000); }
      else if (frame.type === "joined" && frame.author && frame.author.role === "merchant_staff") {
        const note = document.createElement("li");
        note.className = "bubble from-system";
        note.textContent = `${frame.author.name} · ${t.merchantJoined}`;
        log.append(note);
      }
      else if (frame.type === "resync") socket.send('{"type":"sync"}');
      else if (frame.type === "ticket.changed" && (frame.status === "resolved" || frame.status === "closed")) location.reload();
      else if (frame.type === "ticket.merged" && frame.into_ticket_id) {
        // merged into another request: the conversation continues there
        location.assign(`/chat/${Number(frame.into_ticket_id)}/`);
      }
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === 4401 || event.code === 4403) { setStatus("closed", t.reconnecting); return; }
      setStatus("closed", t.reconnecting);
      setTimeout(connect, reconnectDelay(event.code));
    });
  }

  // a message whose files the server will not take (sent twice, or from another
  // tab): it would be refused again on every resend, so it leaves the outbox
  function dropRefused(detail) {
    const refused = outbox().filter((item) => item.attachments && item.attachments.length);
    if (!refused.length) return;
    const ids = new Set(refused.map((item) => item.id));
    saveOutbox(outbox().filter((item) => !ids.has(item.id)));
    for (const li of log.querySelectorAll(".bubble.pending[data-client-id]")) if (ids.has(li.dataset.clientId)) li.remove();
    showAttachError(detail);
  }

  const attachError = document.getElementById("chat-attach-error");
  function showAttachError(text) {
    if (!attachError) return;
    attachError.textContent = text || t.failed;
    attachError.hidden = false;
    clearTimeout(showAttachError.timer);
    showAttachError.timer = setTimeout(() => { attachError.hidden = true; }, 8000);
  }

  const attachInput = document.getElementById("chat-attach");
  const attachments = (form && attachInput && window.CSAttach) ? CSAttach.tray({
    input: attachInput, chips: document.getElementById("chat-chips"), url: form.dataset.uploadUrl, t,
    onChange: (ids, busy) => { const send = form.querySelector("button[type=submit]"); if (send) send.disabled = busy; },
    onError: showAttachError,
  }) : null;

  if (form) {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const text = input.value.trim();
      const files = attachments ? attachments.items() : [];
      if (!text && !files.length) return;
      if (attachments && attachments.busy()) return;
      const item = { id: (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random()), body: text,
                     attachments: files.map((a) => ({ id: a.id, url: a.url, thumbnail_url: a.thumbnail_url, content_type: a.content_type, size_bytes: a.size_bytes })) };
      saveOutbox([...outbox(), item]);
      log.append(bubble({ body: text, client_msg_id: item.id, attachments: item.attachments }, true));
      if (attachments) attachments.clear();
      input.value = "";
      lastTyping = 0; // the next thing typed is news again
      flushOutbox();
    });
    input.addEventListener("input", () => {
      // at most one typing frame per 3 s: each one costs the server a scope check
      if (!socket || socket.readyState !== WebSocket.OPEN || Date.now() - lastTyping < 3000) return;
      lastTyping = Date.now();
      socket.send('{"type":"typing"}');
    });
    input.addEventListener("keydown", (event) => { if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) form.requestSubmit(); });
  }
  // what was typed before a reload is still waiting: show it as pending and send it
  for (const item of outbox()) log.append(bubble({ body: item.body, client_msg_id: item.id, attachments: item.attachments }, true));
  document.addEventListener("visibilitychange", markRead);
  setInterval(() => {
    if (socket && socket.readyState === WebSocket.OPEN && !document.hidden) socket.send('{"type":"sync"}');
  }, SYNC_MS);
  connect();
})();
