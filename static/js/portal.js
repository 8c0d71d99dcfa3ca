/* CS Workbench · merchant portal behaviour. Plain JS, no build step; console.js
 * (loaded by base.html) already gives the language switch, the reply box and
 * the conversation polling hooks.
 *
 *  - resend deadline countdowns from data-deadline-at, ticking every second,
 *    red under the threshold in <body data-urgent-s>, "overdue by" once passed
 *  - the payout form's "All" button fills in the withdrawable amount
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

  tickDeadlines();
  setInterval(tickDeadlines, 1000);
})();
