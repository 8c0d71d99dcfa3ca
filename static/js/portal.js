/* CS Workbench · merchant portal behaviour. Plain JS, no build step; console.js
 * (loaded by base.html) already gives the language switch, the reply box and
 * the conversation polling hooks.
 *
 *  - resend deadline countdowns from data-deadline-at, ticking every second,
 *    red under the threshold in <body data-urgent-s>, "overdue by" once passed
 *  - the payout form's "All" button fills in the withdrawable amount
 *  - the live socket /ws/merchant/: a toast and the nav count when a ticket
 *    needs the merchant or the merchant is invited into a chat; the open ticket
 *    list or ticket refreshes itself; reconnects with backoff
 */
(function () {
  "use strict";

  const body = document.body;
  if (!body.hasAttribute("data-portal")) return;

  const I18N = (() => {
    try { return JSON.parse(document.getElementById("portal-i18n").textContent); } catch (e) { return {}; }
  })();
  const t = (key) => I18N[key] || key;

  // the server's clock decides what "late" means, not the merchant's PC
  const serverNow = Date.parse(body.dataset.serverNow || "");
  const skew = Number.isNaN(serverNow) ? 0 : serverNow - Date.now();
  const now = () => Date.now() + skew;
  const urgentMs = (Number(body.dataset.urgentS) || 6 * 3600) * 1000;

  const pad = (n) => String(n).padStart(2, "0");

  function span(ms) {
    const total = Math.floor(Math.abs(ms) / 1000);
    const hours = Math.floor(total / 3600);
    return `${hours}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}`;
  }

  function tickDeadlines() {
    const current = now();
    for (const el of document.querySelectorAll(".deadline[data-deadline-at]")) {
      if (el._due === undefined) el._due = Date.parse(el.dataset.deadlineAt);
      if (Number.isNaN(el._due)) continue;
      const left = el._due - current;
      const text = left < 0 ? `${t("overdue")} ${span(left)}` : `${t("left")} ${span(left)}`;
      if (el.textContent !== text) el.textContent = text;
      el.classList.toggle("is-overdue", left < 0);
      el.classList.toggle("is-urgent", left >= 0 && left < urgentMs);
    }
  }

  document.addEventListener("click", (event) => {
    const fill = event.target.closest && event.target.closest("[data-fill-amount]");
    if (!fill) return;
    const input = document.getElementById("payout-amount");
    if (input) { input.value = fill.dataset.fillAmount; input.focus(); }
  });

  document.addEventListener("htmx:afterSettle", tickDeadlines);

  /* live notices */

  const toast = (options) => window.CSW && window.CSW.toast(options);
  let socket = null;
  let attempts = 0;

  function setNeeds(delta) {
    const badge = document.getElementById("portal-needs");
    if (!badge) return;
    const count = Math.max(0, (Number(badge.textContent) || 0) + delta);
    badge.textContent = String(count);
    badge.hidden = count === 0;
  }

  function onTicketPage(ticketId) {
    const page = document.querySelector("[data-portal-ticket]");
    return !!page && page.dataset.portalTicket === String(ticketId);
  }

  const needing = new Set();

  function handle(frame) {
    if (!frame || typeof frame !== "object") return;
    const href = frame.ticket_id ? `/merchant/tickets/${encodeURIComponent(frame.ticket_id)}/` : null;
    if (frame.type === "ticket.changed") {
      const key = String(frame.ticket_id);
      if (frame.needs_merchant && !needing.has(key)) {
        needing.add(key);
        setNeeds(1);
        toast({ title: frame.chat ? t("invitedToChat") : t("needsYou"), text: `#${frame.ticket_id} ${frame.subject || ""}`, href, kind: "warn", timeout: 0 });
      } else if (!frame.needs_merchant && needing.has(key)) {
        needing.delete(key);
        setNeeds(-1);
      }
      if (window.htmx) htmx.trigger(document.body, "refresh-portal");
    } else if (frame.type === "message.posted") {
      if (onTicketPage(frame.ticket_id)) { if (window.htmx) htmx.trigger(document.body, "refresh-messages"); }
      else toast({ title: t("newMessage"), text: `#${frame.ticket_id}`, href, kind: "info" });
    } else if (frame.type === "resync") {
      if (window.htmx) { htmx.trigger(document.body, "refresh-portal"); htmx.trigger(document.body, "refresh-messages"); }
    } else if (frame.type === "resend.task") {
      toast({ title: t("resendTask"), text: `${frame.order_no} · ${t("deadline")} ${new Date(frame.deadline_at).toLocaleString()}`, href: "/merchant/tasks/", kind: "warn", timeout: 0 });
    }
  }

  let connectedOnce = false;
  let restartingUntil = 0;

  function connect() {
    const path = body.dataset.wsMerchant;
    if (!path || !("WebSocket" in window)) return;
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${path}`);
    socket.addEventListener("open", () => {
      const again = connectedOnce;
      connectedOnce = true;
      attempts = 0;
      body.dataset.live = "open";
      if (again && window.htmx) htmx.trigger(document.body, "refresh-portal"); // what happened while away
    });
    socket.addEventListener("message", (event) => {
      let frame;
      try { frame = JSON.parse(event.data); } catch (e) { return; }
      handle(frame);
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      body.dataset.live = "closed";
      if (event.code === 4401 || event.code === 4403) return;
      let delay;
      // a server restarting: back at once, spread over a second, for half a minute
      if (event.code === 1012 || event.code === 1013) restartingUntil = Date.now() + 30000;
      if (Date.now() < restartingUntil) {
        attempts = 0;
        delay = 200 + Math.random() * 800;
      } else {
        delay = Math.min(30000, 1000 * 2 ** attempts) * (0.5 + Math.random() / 2);
        attempts = Math.min(attempts + 1, 10);
      }
      setTimeout(connect, delay);
    });
  }

  tickDeadlines();
  setInterval(tickDeadlines, 1000);
  connect();
})();
