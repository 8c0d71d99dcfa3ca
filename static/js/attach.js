/* Pictures and PDFs for a message (issue #13 item 3), shared by the buyer's
 * chat page and the console's reply box. A file picked is uploaded at once to
 * POST /api/v1/tickets/<id>/attachments/ (session + CSRF) and shows as a chip
 * (its thumbnail, or the PDF's name); the message then names the uploaded ids
 * in ``attachment_ids``. The server judges the file by its content; what it
 * refuses comes back as {code, detail} and is shown where the tray says. */
(function () {
  "use strict";

  function csrfToken() {
    try { return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || ""; } catch (e) { return ""; }
  }

  function formatSize(bytes) {
    if (bytes >= 1024 * 1024) return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
    return `${Math.max(1, Math.round(bytes / 1024))} KB`;
  }

  /* The attachments of a message as links: a thumbnail that opens the full
   * picture, a PDF as a file link. Built with DOM calls, never HTML strings. */
  function renderList(attachments, t) {
    const box = document.createElement("div");
    box.className = "attachments";
    for (const a of attachments || []) {
      const link = document.createElement("a");
      link.href = a.url;
      link.target = "_blank";
      link.rel = "noopener";
      if (a.thumbnail_url) {
        link.className = "att att-image";
        const img = document.createElement("img");
        img.src = a.thumbnail_url;
        img.alt = t.picture || "";
        img.loading = "lazy";
        link.append(img);
      } else {
        link.className = "att att-file";
        link.textContent = `${t.pdf || "PDF"} · ${formatSize(a.size_bytes || 0)}`;
      }
      box.append(link);
    }
    return box;
  }

  /* A tray of uploads bound to a file input. ``onChange(ids, busy)`` runs after
   * every change; ``onError(text)`` when the server refuses a file. */
  function tray({ input, chips, url, t, onChange, onError }) {
    const items = [];
    const max = Number(input.dataset.max || 6);

    const ids = () => items.filter((item) => item.id).map((item) => item.id);
    const busy = () => items.some((item) => item.pending);

    function render() {
      chips.textContent = "";
      for (const item of items) {
        const chip = document.createElement("span");
        chip.className = "att-chip" + (item.pending ? " is-uploading" : "");
        if (item.id) chip.dataset.attachmentId = item.id;
        if (item.thumbnail_url) {
          const img = document.createElement("img");
          img.src = item.thumbnail_url;
          img.alt = item.name;
          chip.append(img);
        } else {
          const label = document.createElement("span");
          label.className = "att-chip-name";
          label.textContent = item.pending ? t.uploading : `PDF · ${item.name}`;
          chip.append(label);
        }
        if (!item.pending) {
          const remove = document.createElement("button");
          remove.type = "button";
          remove.className = "att-chip-remove";
          remove.title = t.remove;
          remove.setAttribute("aria-label", t.remove);
          remove.textContent = "×";
          remove.addEventListener("click", () => { items.splice(items.indexOf(item), 1); render(); });
          chip.append(remove);
        }
        chips.append(chip);
      }
      chips.hidden = items.length === 0;
      if (onChange) onChange(ids(), busy());
    }

    async function add(file) {
      const item = { name: file.name, pending: true };
      items.push(item);
      render();
      const data = new FormData();
      data.append("file", file);
      try {
        const response = await fetch(url, {
          method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrfToken() }, body: data,
        });
        const answer = await response.json().catch(() => ({}));
        if (!response.ok) throw new Error(answer.detail || t.failed);
        Object.assign(item, answer, { pending: false });
      } catch (error) {
        items.splice(items.indexOf(item), 1);
        if (onError) onError(`${file.name}: ${error.message || t.failed}`);
      }
      render();
    }

    input.addEventListener("change", () => {
      const room = Math.max(0, max - items.length);
      const files = Array.from(input.files || []);
      if (files.length > room && onError) onError(t.tooMany);
      for (const file of files.slice(0, room)) add(file);
      input.value = "";
    });

    return {
      ids, busy,
      items: () => items.filter((item) => item.id).map((item) => ({ ...item })),
      clear() { items.length = 0; render(); },
    };
  }

  window.CSAttach = { tray, renderList, formatSize };
})();
