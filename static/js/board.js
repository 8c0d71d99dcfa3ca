// The market board (issue #14 item 5): the dashboard's trend charts, drawn here from the
// figures the page carries (#board-figures) and again from every "board" frame the console
// socket brings (console.js hands them to CSBoard.update), without reloading the fragment.
// Each chart: today against yesterday and the same time last week, the threshold as a
// dashed line, today's points past it in red, and the tile's title red while its last
// five minutes are past it. [data-fullscreen="#id"] puts the board on a wall screen.
(function () {
  "use strict";
  // drawn in the chart's own pixels (viewBox = its size), so text and dots keep their shape
  // on a phone and on a wall screen alike; redrawn when the size changes
  let W = 300;
  let H = 100;
  const AXIS = 14;
  const FRAME_FRESH_MS = 30000; // without a frame for this long the fragment poll takes over
  const POLL_EVERY_MS = 60000; // with frames coming, the fragment (agents, breaches) every minute
  let lastFrameAt = 0;
  let lastPollAt = Date.now();
  let figures = null;

  function esc(text) {
    return String(text).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);
  }
  function pad(n) { return String(n).padStart(2, "0"); }
  function clock(date) { return `${pad(date.getHours())}:${pad(date.getMinutes())}`; }
  function yuan(fen) {
    const sign = fen < 0 ? "-" : "";
    const abs = Math.abs(Math.round(fen));
    return `${sign}¥${Math.floor(abs / 100).toLocaleString("en-US")}.${pad(abs % 100)}`;
  }
  function wait(seconds) { return `${Math.floor(seconds / 60)}:${pad(Math.round(seconds) % 60)}`; }
  function crossed(value, series) {
    if (value === null || value === undefined || !series.threshold) return false;
    return series.below ? value < series.threshold : value > series.threshold;
  }

  // one series' SVG: lines (or bars for today) on one scale with the threshold (and a budget)
  function chart(series, { bars = false, points = null, ceiling = null, labels = ["", ""] } = {}) {
    const n = points || Math.max(series.today.length, series.yesterday.length, series.last_week.length, 1);
    const all = [...series.today, ...series.yesterday, ...series.last_week].filter((v) => v !== null && v !== undefined);
    const top = Math.max(...all, series.threshold || 0, ceiling || 0, 1) * 1.05;
    const y = (v) => (H - (H * v) / top).toFixed(1);
    const step = bars ? W / n : W / Math.max(n - 1, 1);
    const x = (i) => (bars ? i * step + step / 2 : i * step).toFixed(1);
    const path = (values) => {
      let d = "";
      let pen = false;
      values.forEach((v, i) => {
        if (v === null || v === undefined) { pen = false; return; }
        d += `${pen ? "L" : "M"}${x(i)},${y(v)} `;
        pen = true;
      });
      return d.trim();
    };
    let svg = "";
    if (bars) {
      series.today.forEach((v, i) => {
        const h = ((H * v) / top).toFixed(1);
        svg += `<rect x="${(i * step).toFixed(1)}" y="${(H - h).toFixed(1)}" width="${Math.max(step - 1, 1).toFixed(1)}" height="${h}" class="bar${crossed(v, series) ? " is-hot" : ""}"><title>${v}</title></rect>`;
      });
    }
    svg += `<path d="${path(series.last_week)}" class="trend trend-last-week" fill="none" data-trend="last-week"/>`;
    svg += `<path d="${path(series.yesterday)}" class="trend trend-yesterday" fill="none" data-trend="yesterday"/>`;
    if (!bars) svg += `<path d="${path(series.today)}" class="trend trend-today" fill="none" data-trend="today"/>`;
    if (ceiling) svg += `<line x1="0" x2="${W}" y1="${y(ceiling)}" y2="${y(ceiling)}" class="budget-line" data-budget="${ceiling}"/>`;
    if (series.threshold) {
      svg += `<line x1="0" x2="${W}" y1="${y(series.threshold)}" y2="${y(series.threshold)}" class="ceiling" data-threshold="${series.threshold}"/>`;
    }
    if (!bars) {
      series.today.forEach((v, i) => {
        if (crossed(v, series)) svg += `<line x1="${x(i)}" x2="${x(i)}" y1="${y(v)}" y2="${y(v)}" class="hot-point"><title>${v}</title></line>`;
      });
    }
    svg += `<text x="0" y="${H + AXIS - 2}" class="axis">${esc(labels[0])}</text>`;
    svg += `<text x="${W}" y="${H + AXIS - 2}" class="axis" text-anchor="end">${esc(labels[1])}</text>`;
    return svg;
  }

  function setCrossed(tile, count) {
    const shown = tile && tile.querySelector("[data-crossed]");
    if (!shown) return;
    shown.hidden = !count;
    shown.querySelector("[data-crossed-count]").textContent = count;
  }
  function setAlert(tile, on) {
    if (!tile) return;
    tile.classList.toggle("is-alert", !!on);
    const big = tile.querySelector(".big");
    if (big && tile.dataset.tile !== "spend") big.classList.toggle("is-hot", !!on);
  }
  function setText(selector, text) {
    const el = document.querySelector(selector);
    if (el) el.textContent = text;
  }
  function latest(values) {
    for (let i = values.length - 1; i >= 0; i -= 1) if (values[i] !== null && values[i] !== undefined) return values[i];
    return null;
  }
  function labelsFrom() {
    const el = document.getElementById("board-labels");
    try { return el ? JSON.parse(el.textContent) : { categories: {} }; } catch (e) { return { categories: {} }; }
  }

  function render(data) {
    const board = document.getElementById("dashboard");
    if (!board || !data) return;
    figures = data;
    const start = new Date(data.start);
    const now = new Date(data.at);
    const hour = [clock(start), clock(now)];
    const size = (svg) => {
      W = Math.max(Math.round(svg.clientWidth || 300), 60);
      H = Math.max(Math.round(svg.clientHeight || 114) - AXIS, 30);
      svg.setAttribute("viewBox", `0 0 ${W} ${H + AXIS}`);
    };
    const draw = (name, series, options) => {
      board.querySelectorAll(`svg[data-chart="${name}"]`).forEach((svg) => {
        size(svg);
        svg.innerHTML = chart(series, options);
      });
    };
    draw("inflow", data.inflow, { bars: true, labels: hour });
    draw("waiting", data.waiting, { labels: hour });
    draw("first_reply_s", data.first_reply_s, { labels: hour });
    draw("csat", data.csat, { labels: hour });
    draw("spend", data.spend, { points: 24, ceiling: data.spend.budget_fen, labels: ["00:00", "24:00"] });

    // the top categories may change between frames: rebuild their small charts
    const holder = board.querySelector("[data-categories]");
    if (holder) {
      const labels = labelsFrom();
      const names = labels.categories || {};
      holder.innerHTML = data.categories.length ? data.categories.map((c) => {
        const total = c.today.reduce((a, b) => a + b, 0);
        return `<div class="mini-trend${c.alert ? " is-alert" : ""}" data-category="${esc(c.code)}"><h3>${esc(names[c.code] || c.code)} <span class="mono" data-figure="category-total">${total}</span></h3>`
          + `<svg class="chart chart-small" data-chart="category" data-code="${esc(c.code)}" preserveAspectRatio="none" role="img" aria-label="${esc(names[c.code] || c.code)}"></svg></div>`;
      }).join("") : `<p class="muted">${esc(labels.none || "")}</p>`;
      data.categories.forEach((c) => {
        const svg = holder.querySelector(`svg[data-code="${c.code}"]`);
        if (svg) { size(svg); svg.innerHTML = chart(c, { labels: hour }); }
      });
    }

    // the headlines and each tile's alert
    setText('[data-figure="inflow-total"]', data.inflow.today.reduce((a, b) => a + b, 0));
    setText('[data-figure="inflow-last"]', data.inflow.today[data.inflow.today.length - 1] || 0);
    setText('[data-figure="waiting-chats"]', data.waiting.now);
    setText('[data-figure="longest-wait"]', wait(data.waiting.longest_wait_s));
    const reply = latest(data.first_reply_s.today);
    setText('[data-figure="first-reply"]', reply === null ? "—" : wait(reply));
    const csat = latest(data.csat.today);
    setText('[data-figure="csat"]', csat === null ? "—" : csat.toFixed(1));
    setText('[data-figure="budget-spent"]', yuan(latest(data.spend.today) || 0));
    for (const key of ["waiting", "first_reply_s", "csat", "spend"]) {
      const tile = board.querySelector(`[data-tile="${key}"]`);
      setAlert(tile, data[key].alert);
      setCrossed(tile, data[key].crossed);
    }
    setAlert(board.querySelector('[data-tile="inflow"]'), data.inflow.alert);
    const categories = board.querySelector('[data-tile="categories"]');
    setAlert(categories, data.categories.some((c) => c.alert));
    setCrossed(categories, data.categories.reduce((n, c) => n + c.crossed, 0));
    board.dataset.updated = data.at;
  }

  function fromPage() {
    const el = document.getElementById("board-figures");
    if (!el) return;
    try { render(JSON.parse(el.textContent)); } catch (e) { /* a page without the board */ }
  }

  window.CSBoard = {
    // a "board" frame from the console socket (supervisors only)
    update(frame) {
      lastFrameAt = Date.now();
      render(frame);
    },
    // the fragment's poll runs while no frame came lately, and once a minute anyway
    pollDue() {
      const due = Date.now() - lastFrameAt > FRAME_FRESH_MS || Date.now() - lastPollAt > POLL_EVERY_MS;
      if (due) lastPollAt = Date.now();
      return due;
    },
    figures: () => figures,
  };

  document.addEventListener("DOMContentLoaded", fromPage);
  let resizing = null;
  const redraw = () => { clearTimeout(resizing); resizing = setTimeout(() => render(figures), 100); };
  window.addEventListener("resize", redraw);
  document.addEventListener("fullscreenchange", redraw);
  // the fragment's refresh swaps in new figures: draw them (htmx fires "htmx:load" on new content)
  document.addEventListener("htmx:load", (event) => {
    const elt = event.target;
    if (elt && (elt.id === "dashboard" || (elt.querySelector && elt.querySelector("#board-figures")))) fromPage();
  });

  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-fullscreen]");
    if (!button) return;
    const target = document.querySelector(button.dataset.fullscreen);
    if (!target) return;
    if (document.fullscreenElement) {
      document.exitFullscreen();
    } else if (target.requestFullscreen) {
      target.requestFullscreen().catch(() => { target.classList.toggle("is-wall"); redraw(); });
    } else {
      target.classList.toggle("is-wall");
      redraw();
    }
  });
})();
