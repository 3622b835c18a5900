/*
 * Small helpers for every page (templates/base.html). No build step, no dependencies; the
 * pages work without this file.
 * - <time datetime="..." data-local> shows the time in the viewer's own time zone
 *   (data-local="time": the time of day only). The server writes UTC as the fallback.
 * - <button data-copy="#selector"> copies that field's value to the clipboard.
 */
(function () {
  "use strict";

  function localTimes(root) {
    (root || document).querySelectorAll("time[data-local]").forEach((el) => {
      const when = new Date(el.getAttribute("datetime"));
      if (Number.isNaN(when.getTime())) return;
      const options =
        el.dataset.local === "time"
          ? { hour: "2-digit", minute: "2-digit" }
          : { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
      el.textContent = when.toLocaleString([], options);
      el.title = when.toISOString().replace("T", " ").slice(0, 16) + " UTC";
    });
  }

  async function copy(button) {
    const field = document.querySelector(button.dataset.copy);
    if (!field) return;
    const status = document.querySelector("[data-copy-status]");
    let copied = false;
    try {
      await navigator.clipboard.writeText(field.value);
      copied = true;
    } catch (error) {
      // No clipboard API (plain http, old browser): select the text and use the old command.
      field.focus();
      field.select();
      copied = document.execCommand && document.execCommand("copy");
    }
    if (status) status.textContent = copied ? "Copied." : "Select the token and copy it.";
    button.textContent = copied ? "Copied" : "Copy";
  }

  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("[data-copy]");
    if (button) copy(button);
  });
  document.addEventListener("htmx:afterSettle", (event) => localTimes(event.target));
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => localTimes());
  } else {
    localTimes();
  }
})();
