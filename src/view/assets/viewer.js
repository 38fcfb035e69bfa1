// crucible view: keyboard labelling on transcript pages, and live updates
// of a running run's page. No page needs this script to be read.
"use strict";

(function labelling() {
  const form = document.getElementById("annotate");
  if (!form) return;
  const rows = Array.from(form.querySelectorAll("tr.mode-row"));
  let current = 0;
  function focusRow(i) {
    if (rows.length === 0) return;
    current = Math.max(0, Math.min(rows.length - 1, i));
    rows.forEach((r, j) => r.classList.toggle("current", j === current));
    rows[current].scrollIntoView({ block: "nearest" });
  }
  rows.forEach((r, i) => {
    r.addEventListener("click", () => focusRow(i));
    r.addEventListener("focusin", () => focusRow(i));
  });
  focusRow(0);
  // Keys act unless a text field has the focus (where they are typing).
  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const t = e.target;
    // Keys are the form's only on the page itself and its radios: a text
    // field, a select, a link or a button keeps its own.
    const own = t === document.body || t === document.documentElement ||
      (t.tagName === "INPUT" && t.type === "radio") || rows.includes(t);
    if (!own) return;
    const radios = rows.length ? rows[current].querySelectorAll("input[type=radio]") : [];
    if (e.key === "j") { focusRow(current + 1); e.preventDefault(); }
    else if (e.key === "k") { focusRow(current - 1); e.preventDefault(); }
    else if (e.key >= "1" && e.key <= "9") {
      const choice = radios[Number(e.key) - 1];
      if (choice && choice.value !== "") { choice.checked = true; e.preventDefault(); }
    } else if (e.key === "0") {
      const clear = Array.from(radios).find((r) => r.value === "");
      if (clear) { clear.checked = true; e.preventDefault(); }
    } else if (e.key === "Enter") {
      e.preventDefault();
      // Held down, Enter submits once.
      if (!e.repeat) form.requestSubmit();
    } else if (e.key === "s" && form.dataset.skip) {
      e.preventDefault();
      window.location.assign(form.dataset.skip);
    }
  });
})();

(function live() {
  const facts = document.querySelector("[data-live]");
  if (!facts) return;
  const url = facts.dataset.live;
  async function poll() {
    let progress;
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (!response.ok) return setTimeout(poll, 2000);
      progress = await response.json();
    } catch (_) {
      return setTimeout(poll, 2000);
    }
    for (const el of facts.querySelectorAll("[data-progress]")) {
      const value = progress[el.dataset.progress];
      if (value === undefined) continue;
      el.textContent = el.dataset.progress === "cost_usd" ? Number(value).toFixed(4) : String(value);
    }
    // Finished: reload once for the final summary, curves and tables.
    if (progress.status !== "running") return window.location.reload();
    setTimeout(poll, 1000);
  }
  setTimeout(poll, 1000);
})();
