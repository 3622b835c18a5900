/*
 * Keyboard shortcuts and time measurement for the labeling page (templates/annotator/label.html).
 * No build step, no dependencies. The forms work without this file; it only adds shortcuts.
 * The task panel is replaced by htmx after each submit or skip, so everything is looked up in
 * the DOM when a key is pressed, and init() runs again after each swap.
 */
(function () {
  "use strict";

  let shownAt = performance.now();
  let aspectIndex = 0;
  let dockCollapsed = false; // kept from one task to the next
  let undoTimer = null;
  const WIDE = window.matchMedia("(min-width: 900px)");

  const $ = (selector, root) => (root || document).querySelector(selector);
  const $$ = (selector, root) => Array.from((root || document).querySelectorAll(selector));
  const panel = () => document.getElementById("task-panel");
  const answerForm = () => document.getElementById("answer-form");

  function init() {
    shownAt = performance.now();
    aspectIndex = 0;
    const checked = $$(".aspect-row").findIndex((row) => !$("input:checked", row));
    if (checked > 0) aspectIndex = checked;
    showAspect();
    syncStrength();
    showRanking();
    showFlagCount();
    setDock(dockCollapsed);
    // Lists that fold away on a phone are open from the start on a wide screen.
    if (WIDE.matches) $$("details[data-open-wide]").forEach((d) => (d.open = true));
    startUndoCountdown();
    watchPrompt();
    setupWriter();
  }

  // --- Demonstration and edit tasks: drafts, length, preview ----------------------------------

  // What is typed is kept in localStorage under the task's key at every keystroke, so a reload
  // or a closed tab loses nothing; it is dropped once the answer was stored (the next task's
  // panel came back).
  let submittedDraft = null;
  const writer = () => document.getElementById("writer");

  function draftFields(box) {
    return $$("[data-draft-field]", box);
  }

  function saveDraft() {
    const box = writer();
    if (!box) return;
    const draft = {};
    draftFields(box).forEach((f) => (draft[f.name] = f.value));
    try {
      localStorage.setItem(box.dataset.draftKey, JSON.stringify(draft));
    } catch (e) {
      // Storage full or refused: the page still works, only without drafts.
    }
  }

  function countChars() {
    const box = writer();
    const text = document.getElementById("written");
    const out = box && $("[data-char-count]", box);
    if (!text || !out) return;
    const n = text.value.trim().length;
    out.textContent = String(n);
    const short = n < Number(box.dataset.min), long = n > Number(box.dataset.max);
    out.classList.toggle("out-of-range", short || long);
  }

  // Called as soon as the server's answer is swapped in (before htmx settles it): a panel for
  // another task (or none) means the answer was stored; the same task back means it was refused,
  // and the draft stays.
  // A swap that left the submitted writer in place (the live preview) changes nothing.
  let submittedBox = null;
  function dropSubmittedDraft() {
    const box = writer();
    if (!submittedDraft || (box && box === submittedBox)) return;
    if (!box || box.dataset.draftKey !== submittedDraft) localStorage.removeItem(submittedDraft);
    submittedDraft = null;
    submittedBox = null;
  }

  function setupWriter() {
    dropSubmittedDraft();
    const box = writer();
    if (!box) return;
    let stored = null;
    try {
      stored = JSON.parse(localStorage.getItem(box.dataset.draftKey) || "null");
    } catch (e) {
      stored = null;
    }
    if (stored && !("posted" in box.dataset)) {
      draftFields(box).forEach((f) => {
        if (typeof stored[f.name] === "string") f.value = stored[f.name];
      });
      const state = $("[data-draft-state]", box);
      if (state) state.textContent = "your draft was restored";
    }
    countChars();
    // The first preview (of the draft, the original or what was posted): asked for directly,
    // since htmx may not yet have wired the textarea's own trigger when this runs.
    const text = document.getElementById("written");
    if (text && window.htmx && text.value.trim()) {
      window.htmx.ajax("POST", text.getAttribute("hx-post"), {
        source: text,
        target: "#written-preview",
        swap: "innerHTML",
        values: { text: text.value },
      });
    }
  }

  document.addEventListener("input", (event) => {
    if (!event.target.matches || !event.target.matches("#writer [data-draft-field]")) return;
    saveDraft();
    countChars();
  });

  // Once the prompt box has scrolled out of view, a one-line copy of it pins to the top.
  let promptWatcher = null;
  function watchPrompt() {
    if (promptWatcher) promptWatcher.disconnect();
    const prompt = document.getElementById("prompt");
    const peek = document.getElementById("prompt-peek");
    const form = answerForm();
    if (!prompt || !peek || !form || !("IntersectionObserver" in window)) return;
    promptWatcher = new IntersectionObserver((entries) => {
      const gone = !entries[0].isIntersecting && entries[0].boundingClientRect.top < 0;
      peek.hidden = !gone;
      form.classList.toggle("peeking", gone);
    });
    promptWatcher.observe(prompt);
  }

  // --- Layout: docked answer, A and B scrolling together, differences --------------------------

  function setDock(collapsed) {
    const bar = document.getElementById("answer-bar");
    if (!bar) return;
    dockCollapsed = collapsed;
    bar.classList.toggle("collapsed", collapsed);
    const toggle = $('[data-action="dock"]', bar);
    if (toggle) {
      toggle.setAttribute("aria-expanded", String(!collapsed));
      toggle.textContent = collapsed ? "Show answer" : "Hide answer";
    }
  }

  let syncing = false;
  function syncScroll(source) {
    const toggle = document.getElementById("sync-scroll");
    if (syncing || !toggle || !toggle.checked) return;
    const range = source.scrollHeight - source.clientHeight;
    if (range <= 0) return;
    const ratio = source.scrollTop / range;
    syncing = true;
    $$("[data-sync-scroll]").forEach((other) => {
      if (other !== source) other.scrollTop = ratio * (other.scrollHeight - other.clientHeight);
    });
    requestAnimationFrame(() => (syncing = false));
  }

  function showDiff(on) {
    $$(".response-body").forEach((body) => {
      const diff = $(".diff-view", body);
      const md = $(".md", body);
      if (!diff || !md) return;
      diff.hidden = !on;
      md.hidden = on;
    });
  }

  function toggleDiff() {
    const box = document.getElementById("show-diff");
    if (!box) return false;
    box.checked = !box.checked;
    showDiff(box.checked);
    return true;
  }

  function showFlagCount() {
    const out = $("[data-flag-count]");
    if (!out) return;
    const n = $$('input[name="flag"]:checked').length;
    out.textContent = n ? `(${n} ticked)` : "";
  }

  // --- Undo ----------------------------------------------------------------------------------

  function startUndoCountdown() {
    clearInterval(undoTimer);
    const form = $("form[data-undo-until]");
    if (!form) return;
    let left = Number(form.dataset.undoUntil);
    const out = $("[data-undo-countdown]", form);
    undoTimer = setInterval(() => {
      left -= 1;
      if (left <= 0) {
        clearInterval(undoTimer);
        form.replaceWith(Object.assign(document.createElement("p"), {
          className: "msg msg-success",
          textContent: "Saved. To change it now, use My annotations.",
        }));
        return;
      }
      if (out) out.textContent = `for ${left} s`;
    }, 1000);
  }

  function undo() {
    const button = document.getElementById("undo-button");
    if (!button) return false;
    button.click();
    return true;
  }

  // --- Helpers -------------------------------------------------------------------------------

  function isTyping(el) {
    if (!el || !el.tagName) return false;
    if (el.isContentEditable) return true;
    const tag = el.tagName.toLowerCase();
    if (tag === "textarea" || tag === "select") return true;
    if (tag !== "input") return false;
    return !["radio", "checkbox", "button", "submit", "reset", "file", "hidden"].includes(el.type);
  }

  function check(name, value) {
    const form = answerForm();
    if (!form) return false;
    const input = $$(`input[name="${name}"]`, form).find((i) => i.value === value);
    if (!input || input.disabled) return false;
    input.checked = true;
    input.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  function digitOf(event) {
    const match = /^(?:Digit|Numpad)(\d)$/.exec(event.code || "");
    if (match) return Number(match[1]);
    return /^\d$/.test(event.key) ? Number(event.key) : null;
  }

  function submitAnswer() {
    const form = answerForm();
    if (form) form.requestSubmit();
  }

  // --- Pairwise ------------------------------------------------------------------------------

  // Strength only applies when A or B is chosen: a disabled fieldset is not sent.
  function syncStrength() {
    const strength = document.getElementById("strength");
    if (!strength) return;
    const choice = $('input[name="choice"]:checked');
    strength.disabled = !!choice && !["a", "b"].includes(choice.value);
  }

  const PAIRWISE_DIGITS = { 1: "a", 2: "b", 0: "tie", 9: "both_bad" };
  const STRENGTH_KEYS = { q: "1", w: "2", e: "3" };

  function pairwiseKey(event, digit) {
    if (digit !== null && !event.shiftKey && PAIRWISE_DIGITS[digit]) {
      check("choice", PAIRWISE_DIGITS[digit]);
      syncStrength();
      return true;
    }
    const strength = STRENGTH_KEYS[event.key.toLowerCase()];
    if (strength && !event.shiftKey) {
      syncStrength();
      check("strength", strength);
      return true;
    }
    return false;
  }

  // --- Likert --------------------------------------------------------------------------------

  function showAspect() {
    $$(".aspect-row").forEach((row, i) => row.classList.toggle("current", i === aspectIndex));
  }

  function moveAspect(step) {
    const rows = $$(".aspect-row");
    if (!rows.length) return false;
    aspectIndex = Math.max(0, Math.min(rows.length - 1, aspectIndex + step));
    showAspect();
    return true;
  }

  function likertKey(event, digit) {
    if (digit === null) {
      if (event.key === "ArrowDown") return moveAspect(1);
      if (event.key === "ArrowUp") return moveAspect(-1);
      return false;
    }
    const n = digit === 0 ? 10 : digit;
    if (event.shiftKey) {
      const flag = $$('input[name="flag"]', answerForm())[n - 1];
      if (flag) flag.checked = !flag.checked;
      showFlagCount();
      return true;
    }
    const rows = $$(".aspect-row");
    if (rows.length) {
      const row = rows[aspectIndex];
      const field = $("input[type=radio]", row).name;
      if (check(field, String(n))) moveAspect(1);
      return true;
    }
    check("score", String(n));
    return true;
  }

  // --- Ranking -------------------------------------------------------------------------------

  // The rank selects are the state (they are what the form sends); keys just fill them in.
  function rankSelects() {
    return $$("select[data-rank-select]");
  }

  function showRanking() {
    const out = document.getElementById("rank-order");
    if (!out) return;
    const ranked = rankSelects()
      .map((select, i) => ({ rank: Number(select.value), position: i + 1, select }))
      .filter((r) => r.rank > 0)
      .sort((a, b) => a.rank - b.rank);
    out.textContent = ranked.length ? ranked.map((r) => r.position).join(" › ") : "–";
    rankSelects().forEach((select) => {
      select.closest(".response").classList.toggle("ranked", select.value !== "");
    });
  }

  function rankingKey(event, digit) {
    const selects = rankSelects();
    if (event.key === "Backspace") {
      const last = selects
        .filter((s) => s.value !== "")
        .sort((a, b) => Number(b.value) - Number(a.value))[0];
      if (last) last.value = "";
      showRanking();
      return true;
    }
    if (digit === null || event.shiftKey) return false;
    const select = selects[digit - 1];
    if (select && select.value === "") {
      select.value = String(selects.filter((s) => s.value !== "").length + 1);
    }
    showRanking();
    return true;
  }

  // --- Overlays ------------------------------------------------------------------------------

  function toggleHelp() {
    const help = document.getElementById("help");
    if (!help) return;
    if (help.open) help.close();
    else help.showModal();
  }

  function toggleGuidelines() {
    const guidelines = document.getElementById("guidelines");
    if (guidelines) guidelines.open = !guidelines.open;
  }

  function openSkip() {
    const skip = document.getElementById("skip");
    if (!skip) return;
    skip.open = true;
    const reason = document.getElementById("skip-reason");
    if (reason) reason.focus();
  }

  // --- Keys ----------------------------------------------------------------------------------

  function onKey(event) {
    if (event.defaultPrevented || event.altKey || event.isComposing) return;
    const target = event.target;
    if (isTyping(target)) {
      if (event.key === "Escape") {
        target.blur();
        if (target.id === "skip-reason") document.getElementById("skip").open = false;
        event.preventDefault();
      } else if (
        event.key === "Enter" &&
        (event.ctrlKey || event.metaKey) &&
        ["notes", "written", "critique"].includes(target.id)
      ) {
        event.preventDefault();
        submitAnswer();
      }
      return;
    }
    if (event.ctrlKey || event.metaKey) return;
    const help = document.getElementById("help");
    if (help && help.open) {
      if (event.key === "?") {
        event.preventDefault();
        help.close();
      }
      return; // Escape closes the dialog natively.
    }
    if (handle(event, target)) event.preventDefault();
  }

  function handle(event, target) {
    switch (event.key) {
      case "?":
        toggleHelp();
        return true;
      case "g":
        toggleGuidelines();
        return true;
      case "n": {
        const box = document.getElementById("notes-box");
        if (box) box.open = true;
        const notes = document.getElementById("notes");
        if (notes) notes.focus();
        return true;
      }
      case "u":
        return undo();
      case "d":
        return toggleDiff();
      case "s":
        openSkip();
        return true;
      case "Escape": {
        const skip = document.getElementById("skip");
        if (skip) skip.open = false;
        return false;
      }
      case "Enter": {
        // Buttons, links and summaries keep their own Enter.
        const tag = target && target.tagName ? target.tagName.toLowerCase() : "";
        if (["button", "a", "summary"].includes(tag)) return false;
        submitAnswer();
        return true;
      }
    }
    const p = panel();
    const kind = p ? p.dataset.kind : "";
    const digit = digitOf(event);
    if (kind === "pairwise") return pairwiseKey(event, digit);
    if (kind === "likert") return likertKey(event, digit);
    if (kind === "ranking") return rankingKey(event, digit);
    return false;
  }

  document.addEventListener("keydown", onKey);

  // Clicking an aspect row makes it the one the digits score.
  document.addEventListener("change", (event) => {
    const row = event.target.closest && event.target.closest(".aspect-row");
    if (row) {
      aspectIndex = $$(".aspect-row").indexOf(row);
      showAspect();
    }
    if (event.target.matches && event.target.matches("#writer [data-draft-field]")) saveDraft();
    if (event.target.name === "choice") syncStrength();
    if (event.target.name === "flag") showFlagCount();
    if (event.target.id === "show-diff") showDiff(event.target.checked);
    if (event.target.matches && event.target.matches("select[data-rank-select]")) showRanking();
  });

  // Time from when the task was shown to the submit; set before htmx reads the form.
  document.addEventListener(
    "submit",
    (event) => {
      if (event.target.id !== "answer-form") return;
      const box = writer();
      if (box) {
        saveDraft();
        submittedDraft = box.dataset.draftKey;
        submittedBox = box;
      }
      const field = $('input[name="time_spent_ms"]', event.target);
      if (field) field.value = String(Math.round(performance.now() - shownAt));
    },
    true,
  );

  document.addEventListener("click", (event) => {
    if (!event.target.closest) return;
    if (event.target.closest('[data-action="help"]')) toggleHelp();
    const dock = event.target.closest('[data-action="dock"]');
    if (dock) {
      setDock(!dockCollapsed);
      // After a pointer click, give the keys back to the page (Enter submits, not re-folds).
      if (event.detail > 0) dock.blur();
    }
  });

  // Scroll events do not bubble: listen in the capture phase for the response boxes.
  document.addEventListener(
    "scroll",
    (event) => {
      const target = event.target;
      if (target && target.matches && target.matches("[data-sync-scroll]")) syncScroll(target);
    },
    true,
  );

  // A request that failed (403, 500, network) leaves the panel as it was: say so, loudly.
  function requestFailed(message) {
    const box = document.getElementById("request-error");
    if (!box) return;
    box.textContent = message;
    box.hidden = false;
  }
  document.addEventListener("htmx:responseError", (event) => {
    const status = event.detail.xhr ? event.detail.xhr.status : "?";
    requestFailed(
      `The server answered ${status}: your last action was not stored. Reload the page and try again.`,
    );
  });
  document.addEventListener("htmx:sendError", () => {
    requestFailed("The server could not be reached: your last action was not stored. Try again.");
  });
  // After htmx swapped in a new task panel: start its clock and reset the key state.
  let shownPanel = null;
  function panelChanged() {
    const current = panel();
    if (current === shownPanel) return;
    shownPanel = current;
    const box = document.getElementById("request-error");
    if (box) box.hidden = true;
    init();
  }
  document.addEventListener("htmx:afterSwap", dropSubmittedDraft);
  document.addEventListener("htmx:afterSettle", panelChanged);

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", panelChanged);
  else panelChanged();
})();
