// The console works without this script; it only adds conveniences.
// - A "Copy" button beside each element with data-copy, copying its text.
// - The feed executions page refreshes itself every 5 s while a run
//   queued from this browser has not appeared yet (data-refresh).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-copy]")) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "copy";
    button.textContent = "Copy";
    button.setAttribute("aria-label", "Copy " + el.getAttribute("data-copy"));
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(el.textContent.trim());
        button.textContent = "Copied";
      } catch (_) {
        button.textContent = "Select and copy";
      }
    });
    el.after(button);
  }
  const refresh = document.querySelector("[data-refresh]");
  if (refresh) {
    setTimeout(() => location.reload(), Number(refresh.getAttribute("data-refresh")) || 5000);
  }
});
