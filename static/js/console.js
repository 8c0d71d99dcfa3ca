/* CS Workbench · agent console behaviour. Plain JS, no build step.
 *
 *  - SLA countdowns from data-due-at, ticking every second
 *  - keyboard: j/k/Enter and "/" on the queue, r/q/u and Ctrl+Enter on a ticket, "?" for help
 *  - the quick-reply picker and the reply box
 *  - the live socket /ws/console/ (refreshes the queue / the ticket, toasts SLA alerts),
 *    reconnecting with backoff when it drops
 *  - the chat tabs strip (the agent's chats with unread counts), refreshed on new messages
 *  - on a ticket page, the ticket's own chat socket: who else is viewing, who is typing,
 *    how far the buyer and the merchant have read; the agent's typing and reading go out
 */
(function () {
  "use strict";

  const body = document.body;
  const I18N = (() => {
    try { return JSON.parse(document.getElementById("console-i18n").textContent); } catch (e) { return {}; }
  })();
  const t = (key) => I18N[key] || key;

  // the server's clock decides what "overdue" means, not the agent's PC
  const serverNow = Date.parse(body.dataset.serverNow || "");
  const skew = Number.isNaN(serverNow) ? 0 : serverNow - Date.now();
  const now = () => Date.now() + skew;

  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));

  function debounce(fn, ms) {
    let timer = null;
    return function (...args) {
      clearTimeout(timer);
      timer = setTimeout(() => fn.apply(this, args), ms);
    };
  }

  function isTyping(target) {
    if (!target || !target.closest) return false;
    return !!target.closest("input, textarea, select, [contenteditable=''], [contenteditable=true]");
  }

  /* ------------------------------------------------------------ SLA countdown */

  function pad(n) { return String(n).padStart(2, "0"); }

  function formatSpan(ms) {
    const total = Math.floor(Math.abs(ms) / 1000);
    const days = Math.floor(total / 86400);
    const hours = Math.floor((total % 86400) / 3600);
    const minutes = Math.floor((total % 3600) / 60);
    const seconds = total % 60;
    if (days > 0) return `${days}d ${hours}h`;
    if (hours > 0) return `${hours}:${pad(minutes)}:${pad(seconds)}`;
    return `${pad(minutes)}:${pad(seconds)}`;
  }

  function tickSla() {
    const current = now();
    for (const el of $$(".sla[data-due-at]")) {
      if (el._due === undefined) el._due = Date.parse(el.dataset.dueAt);
      if (Number.isNaN(el._due)) continue;
      const left = el._due - current;
      if (left < 0) {
        el.textContent = `${t("overdue")} ${formatSpan(left)}`;
        el.classList.add("is-overdue");
        el.classList.remove("is-soon");
      } else {
        el.textContent = formatSpan(left);
        el.classList.toggle("is-soon", left < 5 * 60 * 1000);
        el.classList.remove("is-overdue");
      }
    }
    for (const el of $$("[data-waiting-since]")) {
      if (el._since === undefined) el._since = Date.parse(el.dataset.waitingSince);
      if (!Number.isNaN(el._since)) el.textContent = `${t("waiting")} ${formatSpan(current - el._since)}`;
    }
    for (const el of $$(".sla[data-sla-paused]")) {
      if (el.textContent !== t("paused")) el.textContent = t("paused");
    }
  }

  /* ------------------------------------------------------------ shift figure */

  function tickShift() {
    const shift = $("[data-shift]");
    if (!shift) return;
    if (shift._since === undefined) shift._since = Date.now();
    if (!shift.dataset.online) return;
    const worked = Number(shift.dataset.workedS) + Math.floor((Date.now() - shift._since) / 1000);
    const limit = Number(shift.dataset.limitS) || 1;
    const figure = $("[data-shift-worked]", shift);
    if (figure) figure.textContent = `${Math.floor(worked / 3600)}:${pad(Math.floor((worked % 3600) / 60))}`;
    const meter = $("[data-shift-meter]", shift);
    if (meter) meter.style.width = `${Math.min(100, Math.round((100 * worked) / limit))}%`;
    if (worked >= limit && !shift.classList.contains("is-reached")) {
      shift.classList.add("is-reached");
      const banner = $("#shift-banner");
      if (banner) banner.hidden = false;
    }
  }

  /* ------------------------------------------------------------ toasts */

  function toast({ title, text, href, kind = "info", timeout = 9000 }) {
    const box = $("#toasts");
    if (!box) return;
    const el = document.createElement("div");
    el.className = `toast toast-${kind}`;
    el.setAttribute("role", kind === "danger" ? "alert" : "status");
    const head = document.createElement(href ? "a" : "div");
    head.className = "toast-title";
    head.textContent = title;
    if (href) head.href = href;
    const close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", t("dismiss"));
    close.textContent = "×";
    close.addEventListener("click", () => el.remove());
    el.append(head, close);
    if (text) {
      const p = document.createElement("div");
      p.className = "toast-body";
      p.textContent = text;
      el.append(p);
    }
    box.append(el);
    while (box.children.length > 5) box.firstElementChild.remove();
    if (timeout) setTimeout(() => el.remove(), timeout);
  }

  /* ------------------------------------------------------------ queue */

  const queuePage = () => document.getElementById("queue-table");
  let selectedId = null;

  function queueRows() { return $$("#queue-table tbody tr[data-href]"); }

  function selectRow(row, scroll = true) {
    for (const r of queueRows()) {
      r.classList.remove("is-selected");
      r.removeAttribute("aria-selected");
    }
    if (!row) { selectedId = null; return; }
    row.classList.add("is-selected");
    row.setAttribute("aria-selected", "true");
    selectedId = row.dataset.ticketId;
    if (scroll) row.scrollIntoView({ block: "nearest" });
  }

  function moveSelection(step) {
    const rows = queueRows();
    if (!rows.length) return;
    let index = rows.findIndex((r) => r.dataset.ticketId === selectedId);
    index = index < 0 ? (step > 0 ? 0 : rows.length - 1) : Math.max(0, Math.min(rows.length - 1, index + step));
    selectRow(rows[index]);
  }

  function restoreSelection() {
    if (!selectedId) return;
    const row = queueRows().find((r) => r.dataset.ticketId === selectedId);
    selectRow(row || null, false);
  }

  document.addEventListener("click", (event) => {
    const row = event.target.closest && event.target.closest("#queue-table tr[data-href]");
    if (!row || event.target.closest("a, button, input, select")) return;
    if (event.ctrlKey || event.metaKey) { window.open(row.dataset.href, "_blank"); return; }
    window.location.href = row.dataset.href;
  });

  const changedTickets = new Set();
  const refreshQueue = debounce(() => {
    const table = queuePage();
    if (!table || !window.htmx) return;
    const flash = new Set(changedTickets);
    changedTickets.clear();
    htmx.ajax("GET", window.location.pathname + window.location.search, { target: "#queue-table", swap: "outerHTML" })
      .then(() => {
        for (const row of queueRows()) if (flash.has(row.dataset.ticketId)) row.classList.add("flash");
      })
      .catch(() => {});
  }, 800);

  /* ------------------------------------------------------------ ticket page */

  const ticketPage = () => $("[data-ticket-page]");
  const replyBox = () => document.getElementById("reply-body");

  function lastSeq() {
    let max = 0;
    for (const m of $$("#conversation .msg[data-seq]")) max = Math.max(max, Number(m.dataset.seq) || 0);
    return max;
  }

  function scrollConversation(force) {
    const conv = document.getElementById("conversation");
    if (!conv) return;
    const nearBottom = conv.scrollHeight - conv.scrollTop - conv.clientHeight < 160;
    if (force || nearBottom) conv.scrollTop = conv.scrollHeight;
  }

  function dedupeMessages() {
    const seen = new Set();
    for (const m of $$("#conversation .msg[data-seq]")) {
      if (seen.has(m.id)) m.remove();
      else seen.add(m.id);
    }
  }

  function newClientId() {
    const field = document.getElementById("client-msg-id");
    if (!field) return;
    field.value = window.crypto && crypto.randomUUID
      ? crypto.randomUUID()
      : `c-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 12)}`;
  }

  function checkPlaceholders() {
    const box = replyBox();
    const warning = document.getElementById("placeholder-warning");
    if (!box || !warning) return;
    const found = Array.from(new Set(box.value.match(/\{\w+\}/g) || []));
    warning.hidden = found.length === 0;
    warning.textContent = "";
    if (found.length) {
      warning.append(`${t("unfilled")} `);
      found.forEach((name, i) => {
        const code = document.createElement("code");
        code.textContent = name;
        warning.append(code);
        if (i < found.length - 1) warning.append(" ");
      });
    }
  }

  function syncNoteMode() {
    const internal = document.getElementById("reply-internal");
    const box = replyBox();
    const send = $("#reply-form button[type=submit]");
    if (!internal || !box || !send) return;
    box.placeholder = internal.checked ? box.dataset.placeholderNote : box.dataset.placeholderReply;
    send.textContent = internal.checked ? send.dataset.labelNote : send.dataset.labelReply;
  }

  const refreshTicket = debounce(() => {
    const page = ticketPage();
    if (!page || !window.htmx) return;
    const head = document.getElementById("ticket-state");
    if (head && head.contains(document.activeElement) && document.activeElement.matches("input, select")) {
      refreshTicket(); // the agent is typing a note: come back later
      return;
    }
    htmx.ajax("GET", page.dataset.stateUrl, { target: "#ticket-state", swap: "outerHTML" }).catch(() => {});
    syncMessages();
  }, 500);

  /* quick-reply picker */

  const qr = {
    toggle: () => document.getElementById("qr-toggle"),
    picker: () => document.getElementById("qr-picker"),
    filter: () => document.getElementById("qr-filter"),
    items: () => $$("#qr-list .qr-item"),
    visible: () => qr.items().filter((li) => !li.hidden),
    isOpen: () => { const p = qr.picker(); return !!p && !p.hidden; },
    open() {
      const picker = qr.picker();
      if (!picker) return;
      picker.hidden = false;
      qr.toggle().setAttribute("aria-expanded", "true");
      qr.filter().value = "";
      qr.apply();
      qr.filter().focus();
    },
    close(refocus) {
      const picker = qr.picker();
      if (!picker || picker.hidden) return;
      picker.hidden = true;
      qr.toggle().setAttribute("aria-expanded", "false");
      if (refocus && replyBox()) replyBox().focus();
    },
    active() { return qr.items().find((li) => li.getAttribute("aria-selected") === "true"); },
    activate(li) {
      for (const item of qr.items()) item.setAttribute("aria-selected", "false");
      const filter = qr.filter();
      if (!li) { filter.removeAttribute("aria-activedescendant"); return; }
      li.setAttribute("aria-selected", "true");
      filter.setAttribute("aria-activedescendant", li.id);
      li.scrollIntoView({ block: "nearest" });
    },
    apply() {
      const terms = qr.filter().value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      for (const li of qr.items()) {
        const hay = (li.dataset.search || "").toLowerCase();
        li.hidden = !terms.every((term) => hay.includes(term));
      }
      const current = qr.active();
      qr.activate(current && !current.hidden ? current : qr.visible()[0]);
    },
    move(step) {
      const list = qr.visible();
      if (!list.length) return;
      let i = list.indexOf(qr.active());
      i = i < 0 ? 0 : (i + step + list.length) % list.length;
      qr.activate(list[i]);
    },
    insert(li) {
      const box = replyBox();
      if (!li || !box) return;
      const text = li.dataset.text || "";
      const start = box.selectionStart ?? box.value.length;
      const end = box.selectionEnd ?? box.value.length;
      box.value = box.value.slice(0, start) + text + box.value.slice(end);
      qr.close(false);
      box.focus();
      // land on the first placeholder left to fill, else after the inserted text
      const inserted = box.value.slice(start, start + text.length);
      const hole = inserted.search(/\{\w+\}/);
      if (hole >= 0) {
        const length = inserted.slice(hole).match(/^\{\w+\}/)[0].length;
        box.setSelectionRange(start + hole, start + hole + length);
      } else {
        box.setSelectionRange(start + text.length, start + text.length);
      }
      checkPlaceholders();
    },
  };

  document.addEventListener("click", (event) => {
    const target = event.target;
    if (!target.closest) return;
    if (target.closest("#qr-toggle")) {
      qr.isOpen() ? qr.close(true) : qr.open();
      return;
    }
    const item = target.closest("#qr-list .qr-item");
    if (item) { qr.insert(item); return; }
    // the risk banner's prepared reply (a stolen account's complaint) goes in like a quick reply
    const prepared = target.closest("[data-insert-reply]");
    if (prepared) { qr.insert(prepared); return; }
    if (qr.isOpen() && !target.closest("#qr-picker")) qr.close(false);
    if (target.closest("[data-shortcuts-open]")) openHelp();
  });

  document.addEventListener("input", (event) => {
    if (event.target.id === "qr-filter") qr.apply();
    if (event.target.id === "reply-body") checkPlaceholders();
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
    if (event.target.id === "reply-internal") syncNoteMode();
  });

  /* ------------------------------------------------------------ keyboard */

  function openHelp() {
    const dialog = document.getElementById("shortcut-help");
    if (dialog && !dialog.open) dialog.showModal();
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;

    // inside the quick-reply filter
    if (target.id === "qr-filter") {
      if (event.key === "ArrowDown") { event.preventDefault(); qr.move(1); }
      else if (event.key === "ArrowUp") { event.preventDefault(); qr.move(-1); }
      else if (event.key === "Enter") { event.preventDefault(); qr.insert(qr.active()); }
      else if (event.key === "Escape") { event.preventDefault(); qr.close(true); }
      return;
    }
    // in the reply box
    if (target.id === "reply-body") {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        const form = target.form;
        if (form && target.value.trim()) form.requestSubmit();
      } else if (event.key === "Escape") {
        target.blur();
      }
      return;
    }
    if (event.key === "Escape") {
      if (qr.isOpen()) { qr.close(false); return; }
      if (isTyping(target)) target.blur();
      return;
    }
    if (isTyping(target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (document.querySelector("dialog[open]")) return;

    if (event.key === "?") { event.preventDefault(); openHelp(); return; }

    if (queuePage()) {
      if (event.key === "j") { event.preventDefault(); moveSelection(1); }
      else if (event.key === "k") { event.preventDefault(); moveSelection(-1); }
      else if (event.key === "Enter" && selectedId) {
        const row = queueRows().find((r) => r.dataset.ticketId === selectedId);
        if (row) { event.preventDefault(); window.location.href = row.dataset.href; }
      } else if (event.key === "/") {
        const search = document.getElementById("q");
        if (search) { event.preventDefault(); search.focus(); search.select(); }
      }
      return;
    }
    const page = ticketPage();
    if (page) {
      if (event.key === "r" && replyBox()) { event.preventDefault(); replyBox().focus(); }
      else if (event.key === "q" && qr.picker()) { event.preventDefault(); qr.open(); }
      else if (event.key === "u") { event.preventDefault(); window.location.href = page.dataset.queueUrl; }
    }
  });

  /* ------------------------------------------------------------ htmx hooks */

  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target && target.id === "conversation") {
      dedupeMessages();
      const own = event.detail.requestConfig && event.detail.requestConfig.verb === "post";
      if (!own) {
        for (const m of $$("#conversation .msg:not(.seen)")) m.classList.add("is-new");
      }
      for (const m of $$("#conversation .msg")) m.classList.add("seen");
      scrollConversation(own);
    }
  });

  document.addEventListener("htmx:afterSettle", () => {
    restoreSelection();
    tickSla();
  });

  document.addEventListener("htmx:afterRequest", (event) => {
    const form = event.detail.elt;
    if (form && form.id === "reply-form" && event.detail.successful) {
      const confirm = document.getElementById("confirm-held");
      if (confirm) confirm.value = "";
      if (replyAttachments) replyAttachments.clear();
      form.reset();
      newClientId();
      checkPlaceholders();
      syncNoteMode();
      replyBox() && replyBox().focus();
    }
  });

  document.addEventListener("htmx:responseError", (event) => {
    if (event.detail.xhr && event.detail.xhr.status >= 500) toast({ title: t("requestFailed"), kind: "danger" });
  });
  document.addEventListener("htmx:sendError", () => toast({ title: t("requestFailed"), kind: "danger" }));

  /* ------------------------------------------------------------ live socket */

  const live = {
    socket: null,
    attempts: 0,
    connectedOnce: false,
    timer: null,
    ping: null,
    stopped: false,
  };

  function setLive(state) {
    const el = document.getElementById("live-status");
    if (!el) return;
    el.dataset.state = state;
    const text = $(".live-text", el);
    if (text) text.textContent = state === "open" ? t("live") : state === "closed" ? t("offline") : t("connecting");
  }

  function handleFrame(frame) {
    if (!frame || typeof frame !== "object") return;
    const page = ticketPage();
    switch (frame.type) {
      case "resync": // the server's channel layer was away: frames may be lost, the database is not
        refreshDashboard();
        if (queuePage()) refreshQueue();
        if (page) refreshTicket();
        break;
      case "ticket.changed":
        refreshDashboard();
        if (queuePage()) {
          changedTickets.add(String(frame.ticket_id));
          refreshQueue();
        }
        if (page && String(frame.ticket_id) === page.dataset.ticketId) refreshTicket();
        break;
      case "sla.breached":
        toast({
          title: `${t("slaBreached")} · #${frame.ticket_id}`,
          text: frame.subject || "",
          href: `/console/tickets/${encodeURIComponent(frame.ticket_id)}/`,
          kind: "danger",
          timeout: 20000,
        });
        if (queuePage()) { changedTickets.add(String(frame.ticket_id)); refreshQueue(); }
        if (page && String(frame.ticket_id) === page.dataset.ticketId) refreshTicket();
        break;
      case "ticket.reported_up": // 上报: a ticket reached the tier this person owns
        toast({
          title: `${t("reportedUp")} · #${frame.ticket_id}`,
          text: `${frame.subject || ""}${frame.note ? ` — ${frame.by && frame.by.name ? frame.by.name + ": " : ""}${frame.note}` : ""}`,
          href: `/console/tickets/${encodeURIComponent(frame.ticket_id)}/`,
          kind: "warn",
          timeout: 0,
        });
        if (queuePage()) { changedTickets.add(String(frame.ticket_id)); refreshQueue(); }
        if (page && String(frame.ticket_id) === page.dataset.ticketId) refreshTicket();
        break;
      case "incident.overdue":
        toast({
          title: `${t("incidentOverdue")} · #${frame.incident_id}`,
          text: frame.title || "",
          href: `/console/incidents/${encodeURIComponent(frame.incident_id)}/`,
          kind: "danger",
          timeout: 0,
        });
        refreshDashboard();
        break;
      case "shift.reminder": {
        const banner = document.getElementById("shift-banner");
        if (banner) banner.hidden = false;
        const shift = $("[data-shift]");
        if (shift) shift.classList.add("is-reached");
        toast({ title: t("shiftReached"), kind: "warn", timeout: 0 });
        break;
      }
      case "overtime.requested": // to the team leads: someone asks to work on
        toast({
          title: `${t("overtimeAsked")} · ${frame.agent && frame.agent.name ? frame.agent.name : ""}`,
          text: `${frame.minutes} ${t("minutes")} — ${frame.reason || ""}`,
          href: "/console/dashboard/",
          kind: "info",
          timeout: 20000,
        });
        if (window.htmx) htmx.trigger(document.body, "refresh-overtime");
        break;
      case "overtime.decided":
        if (String(frame.agent_id) === document.body.dataset.userId) {
          toast({ title: frame.status === "granted" ? t("overtimeGranted") : t("overtimeDenied"),
                  kind: frame.status === "granted" ? "info" : "warn", timeout: 15000 });
          if (frame.status === "granted") {
            const banner = document.getElementById("shift-banner");
            if (banner) banner.hidden = true;
          }
          if (window.htmx) htmx.trigger(document.body, "refresh-agent-bar");
        }
        if (window.htmx) htmx.trigger(document.body, "refresh-overtime");
        break;
      case "message.posted":
        // the body stays on the server: fetch the new messages of the open ticket
        // (unless its own chat socket already brings them)
        if (page && String(frame.ticket_id) === page.dataset.ticketId && !chatLive.open()) htmx.trigger(document.body, "refresh-messages");
        if (inChatTabs(frame.ticket_id)) refreshChats();
        break;
      case "bulk.progress": {
        // move the bar at once; the fragment re-reads the job when it finishes
        const box = document.getElementById(`job-${frame.job_id}`);
        if (box) {
          const bar = $(".progress-bar", box);
          if (bar) bar.style.width = `${frame.percent}%`;
          const figure = $("[data-percent]", box);
          if (figure) figure.textContent = `${frame.percent}%`;
          if (frame.status !== "running" && frame.status !== "queued") htmx.trigger(document.body, `bulk-progress-${frame.job_id}`);
        }
        refreshDashboard();
        break;
      }
      case "board": // the market board's figures (supervisors' consoles only): redrawn in place
        if (window.CSBoard) window.CSBoard.update(frame);
        break;
      case "budget":
      case "incident":
        refreshDashboard();
        break;
      case "assignment":
        toast({
          title: t("newAssignment"),
          text: `#${frame.ticket_id} ${frame.subject || ""}`,
          href: `/console/tickets/${encodeURIComponent(frame.ticket_id)}/`,
          kind: "info",
          timeout: 15000,
        });
        if (queuePage()) refreshQueue();
        refreshChats();
        break;
      default:
        break;
    }
  }

  function connect() {
    const path = body.dataset.wsPath;
    if (!path || !("WebSocket" in window) || live.stopped) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${window.location.host}${path}`);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    live.socket = socket;
    setLive("connecting");
    socket.addEventListener("open", () => {
      const reconnected = live.connectedOnce;
      live.connectedOnce = true;
      live.attempts = 0;
      setLive("open");
      clearInterval(live.ping);
      live.ping = setInterval(() => {
        if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify({ type: "ping" }));
      }, 25000);
      // frames sent while we were away are lost: the database is the truth, re-read it
      if (reconnected) {
        if (queuePage()) refreshQueue();
        if (ticketPage()) refreshTicket();
      }
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handleFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      clearInterval(live.ping);
      if (live.socket === socket) live.socket = null;
      setLive("closed");
      if (event.code === 4401) { // the session ended
        live.stopped = true;
        window.location.href = `/accounts/login/?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
        return;
      }
      if (event.code === 4403) { live.stopped = true; return; }
      if (event.code === 1012 || event.code === 1013) live.restartingUntil = Date.now() + 30000;
      scheduleReconnect(Date.now() < (live.restartingUntil || 0));
    });
  }

  // soon: the server said "come back at once" (1012 restarting, 1013 its channel
  // layer away for a moment): spread over a second, no backoff
  function scheduleReconnect(soon) {
    if (live.stopped || live.timer) return;
    let delay;
    if (soon) {
      live.attempts = 0;
      delay = Math.round(200 + Math.random() * 800);
    } else {
      const base = Math.min(30000, 1000 * 2 ** live.attempts);
      delay = Math.round(base * (0.5 + Math.random() / 2)); // jitter: not every console at once
      live.attempts = Math.min(live.attempts + 1, 10);
    }
    live.timer = setTimeout(() => { live.timer = null; connect(); }, delay);
  }

  function reconnectNow() {
    if (live.socket || live.stopped) return;
    clearTimeout(live.timer);
    live.timer = null;
    live.attempts = 0;
    connect();
  }

  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) reconnectNow(); });

  /* ------------------------------------------------------------ dashboard */

  // a throttle, not a debounce: a bulk job sends a frame every second, and a
  // debounce restarted by each would hold the dashboard still until the job ends
  let dashboardDue = 0;
  let dashboardTimer = null;
  function refreshDashboard() {
    if (!document.getElementById("dashboard") || !window.htmx || dashboardTimer) return;
    const wait = Math.max(0, dashboardDue - Date.now());
    dashboardTimer = setTimeout(() => {
      dashboardTimer = null;
      dashboardDue = Date.now() + 2000;
      htmx.trigger(document.body, "refresh-dashboard");
    }, wait);
  }

  /* ------------------------------------------------------------ chat tabs */

  function inChatTabs(ticketId) {
    const strip = document.getElementById("chat-tabs");
    return !!strip && (strip.dataset.ticketIds || "").split(",").includes(String(ticketId));
  }

  const refreshChats = debounce(() => {
    if (document.getElementById("chat-tabs") && window.htmx) htmx.trigger(document.body, "refresh-chats");
  }, 400);

  /* ------------------------------------------------------------ the ticket's chat socket */

  const chatLive = {
    socket: null,
    attempts: 0,
    timer: null,
    viewers: new Map(),
    sentRead: 0,
    lastTyping: 0,
    typingTimer: null,
    open() { return !!this.socket && this.socket.readyState === WebSocket.OPEN; },
    send(frame) { if (this.open()) this.socket.send(JSON.stringify(frame)); },
  };

  // The page's check for what a lost wake-up never announced: while its chat
  // socket is open the socket answers (a ``sync`` every 20 s, one number read
  // with the other sockets' of its process), and the conversation's HTTP poll,
  // a whole page request, is the fallback for when it is not (and for the
  // portal's ticket page, which has no chat socket). A hidden tab asks nothing
  // and asks at once when it is looked at again.
  const SYNC_MS = 20000;
  const pollMessagesDue = () => !chatLive.open() && !document.hidden;
  function syncMessages() {
    if (document.hidden || !ticketPage()) return;
    if (chatLive.open()) chatLive.send({ type: "sync" });
    else if (window.htmx) htmx.trigger(document.body, "refresh-messages");
  }

  function renderViewers() {
    const box = document.getElementById("viewers");
    if (!box) return;
    const people = new Map();
    for (const who of chatLive.viewers.values()) people.set(`${who.role}:${who.id}`, who);
    box.textContent = "";
    box.hidden = people.size === 0;
    if (!people.size) return;
    box.append(`${t("alsoHere")} `);
    for (const who of people.values()) {
      const chip = document.createElement("span");
      chip.className = `viewer viewer-${who.role}`;
      chip.textContent = who.name;
      chip.dataset.userId = who.id;
      box.append(chip, " ");
    }
  }

  function applyReceipts() {
    const page = ticketPage();
    if (!page) return;
    for (const tag of $$("#conversation .read-tag")) tag.remove();
    const marks = [["buyer", Number(page.dataset.buyerReadSeq) || 0], ["merchant", Number(page.dataset.merchantReadSeq) || 0]];
    for (const [side, seq] of marks) {
      if (!seq) continue;
      // the newest message they could see (not an internal note) up to where they have read
      const seen = $$("#conversation .msg[data-seq]:not(.msg-internal)").filter((m) => Number(m.dataset.seq) <= seq).pop();
      const head = seen && $(".msg-head", seen);
      if (!head) continue;
      const tag = document.createElement("span");
      tag.className = `read-tag read-${side}`;
      tag.textContent = `✓ ${t("read")} · ${side === "buyer" ? t("buyer") : t("merchant")}`;
      head.append(tag);
    }
  }

  function csrfToken() {
    try { return JSON.parse(body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { return ""; }
  }

  // what the page shows is read once it is visible: a "read" frame while the chat
  // socket is open, else a POST (opening the page, a socket that is away); the
  // GET of the page writes nothing
  function markRead() {
    const page = ticketPage();
    const seq = lastSeq();
    if (!page || document.hidden || seq <= chatLive.sentRead) return;
    chatLive.sentRead = seq;
    if (chatLive.open()) {
      chatLive.send({ type: "read", seq });
      return;
    }
    if (!page.dataset.readUrl) return;
    const retry = () => { if (chatLive.sentRead === seq) chatLive.sentRead = 0; };
    fetch(page.dataset.readUrl, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() },
      body: new URLSearchParams({ seq: String(seq) }),
    }).then((response) => {
      if (!response.ok) { retry(); return; }
      if (inChatTabs(page.dataset.ticketId)) refreshChats(); // its unread count is now zero
    }).catch(retry);
  }

  function showTyping(author) {
    const box = document.getElementById("typing-indicator");
    if (!box) return;
    box.textContent = `${author.name} ${t("isTyping")}`;
    box.hidden = false;
    clearTimeout(chatLive.typingTimer);
    chatLive.typingTimer = setTimeout(() => { box.hidden = true; }, 4000);
  }

  function handleChatFrame(frame) {
    const page = ticketPage();
    if (!page || !frame) return;
    const me = body.dataset.userId;
    switch (frame.type) {
      case "message":
        if (frame.seq > lastSeq()) htmx.trigger(document.body, "refresh-messages");
        if (frame.author && frame.author.id) { const box = document.getElementById("typing-indicator"); if (box) box.hidden = true; }
        break;
      case "typing":
        if (frame.author && String(frame.author.id) !== me) showTyping(frame.author);
        break;
      case "read":
        if (!frame.author) break;
        if (frame.author.role === "buyer") page.dataset.buyerReadSeq = Math.max(Number(page.dataset.buyerReadSeq) || 0, frame.seq);
        else if (frame.author.role === "merchant_staff") page.dataset.merchantReadSeq = Math.max(Number(page.dataset.merchantReadSeq) || 0, frame.seq);
        applyReceipts();
        break;
      case "joined":
      case "here":
        if (frame.author && String(frame.author.id) !== me) { chatLive.viewers.set(frame.author.key, frame.author); renderViewers(); }
        break;
      case "left":
        if (frame.author) { chatLive.viewers.delete(frame.author.key); renderViewers(); }
        break;
      case "synced": // the answer to a sync, after anything it found: the page fetches what it still lacks
        if (frame.seq > lastSeq()) htmx.trigger(document.body, "refresh-messages");
        break;
      case "ticket.merged": // the duplicate was merged: its conversation goes on in the target
        if (String(frame.ticket_id) === page.dataset.ticketId && frame.into_ticket_id && !page.dataset.mergedInto) {
          location.assign(`/console/tickets/${Number(frame.into_ticket_id)}/`);
        }
        break;
      default:
        break;
    }
  }

  function connectChat() {
    const page = ticketPage();
    if (!page || !page.dataset.chatPath || !("WebSocket" in window)) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    let socket;
    try {
      socket = new WebSocket(`${scheme}//${window.location.host}${page.dataset.chatPath}?after_seq=${lastSeq()}`);
    } catch (e) { return; }
    chatLive.socket = socket;
    socket.addEventListener("open", () => {
      chatLive.attempts = 0;
      chatLive.viewers.clear();
      renderViewers();
      htmx.trigger(document.body, "refresh-messages"); // anything posted while the socket was away
      chatLive.sentRead = 0;
      markRead();
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handleChatFrame(frame);
    });
    socket.addEventListener("close", (event) => {
      if (chatLive.socket === socket) chatLive.socket = null;
      chatLive.viewers.clear();
      renderViewers();
      if (event.code === 4401 || event.code === 4403) return;
      let delay;
      if (event.code === 1012 || event.code === 1013) chatLive.restartingUntil = Date.now() + 30000;
      if (Date.now() < (chatLive.restartingUntil || 0)) {
        chatLive.attempts = 0;
        delay = 200 + Math.random() * 800;
      } else {
        delay = Math.min(30000, 1000 * 2 ** chatLive.attempts) * (0.5 + Math.random() / 2);
        chatLive.attempts = Math.min(chatLive.attempts + 1, 10);
      }
      clearTimeout(chatLive.timer);
      chatLive.timer = setTimeout(connectChat, delay);
    });
  }

  document.addEventListener("input", (event) => {
    if (event.target.id !== "reply-body") return;
    const internal = document.getElementById("reply-internal");
    if (internal && internal.checked) return; // an internal note is nobody else's business
    const at = Date.now();
    if (at - chatLive.lastTyping < 3000) return;
    chatLive.lastTyping = at;
    chatLive.send({ type: "typing" });
  });

  document.addEventListener("click", (event) => {
    // "Ask for overtime" beside a refusal opens the shift bar's form
    if (!event.target.closest || !event.target.closest("[data-open-overtime]")) return;
    const ask = document.getElementById("overtime-ask");
    if (!ask) return;
    ask.open = true;
    const reason = $("input[name=reason]", ask);
    if (reason) reason.focus();
  });

  document.addEventListener("click", (event) => {
    if (!event.target.closest || !event.target.closest("[data-confirm-held]")) return;
    const confirm = document.getElementById("confirm-held");
    const form = document.getElementById("reply-form");
    if (!confirm || !form) return;
    confirm.value = "1";
    form.requestSubmit();
  });

  document.addEventListener("htmx:afterSettle", (event) => {
    const target = event.detail.target;
    if (target && target.id === "conversation") { applyReceipts(); markRead(); }
  });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) { markRead(); syncMessages(); } });

  /* ------------------------------------------------------------ attachments in the reply box */

  // pictures and PDFs go up at once (attach.js); the reply names them in
  // hidden ``attachment_ids`` fields, and may then have no text
  let replyAttachments = null;
  (function setUpReplyAttachments() {
    const input = document.getElementById("reply-attach");
    const form = document.getElementById("reply-form");
    if (!input || !form || !window.CSAttach) return;
    const holder = document.getElementById("reply-attachment-ids");
    const box = replyBox();
    const errors = document.getElementById("reply-error");
    replyAttachments = CSAttach.tray({
      input, chips: document.getElementById("reply-chips"), url: input.dataset.uploadUrl,
      t: { picture: t("picture"), pdf: t("pdf"), uploading: t("uploading"), remove: t("remove"), failed: t("failed"), tooMany: t("tooMany") },
      onChange(ids, busy) {
        holder.textContent = "";
        for (const id of ids) {
          const field = document.createElement("input");
          field.type = "hidden"; field.name = "attachment_ids"; field.value = String(id);
          holder.append(field);
        }
        if (box) box.required = ids.length === 0;
        const send = $("#reply-form button[type=submit]");
        if (send) send.disabled = busy;
        if (errors && ids.length) errors.textContent = "";
      },
      onError(text) { if (errors) errors.textContent = text; },
    });
  })();

  /* ------------------------------------------------------------ start */

  window.CSW = { lastSeq, toast, handleFrame, pollMessages: pollMessagesDue };

  tickSla();
  tickShift();
  setInterval(tickSla, 1000);
  setInterval(tickShift, 30000);
  if (ticketPage()) {
    for (const m of $$("#conversation .msg")) m.classList.add("seen");
    scrollConversation(true);
    newClientId();
    syncNoteMode();
    applyReceipts();
    connectChat();
    markRead(); // the socket is still connecting: this one goes as a POST
    setInterval(() => { if (chatLive.open() && !document.hidden) chatLive.send({ type: "sync" }); }, SYNC_MS);
  }
  if (body.hasAttribute("data-console")) {
    connect();
    // the database is the truth, the socket only wakes us: re-read now and then
    // anyway, in case a frame was lost (or came from a process whose in-memory layer we miss)
    setInterval(() => {
      if (document.hidden) return;
      if (queuePage() && !isTyping(document.activeElement)) refreshQueue();
      if (ticketPage()) refreshTicket();
    }, 60000);
  }
})();
