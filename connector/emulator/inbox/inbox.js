// SPDX-License-Identifier: MIT
// The inbox's only script; no library, no build step. It keeps the server-rendered page
// live: on every event from /emulator/events it re-fetches the current URL and swaps the
// regions marked data-live, leaving forms the user is typing in alone. Forms are posted
// in the background so the page never reloads; without this script they still work.
"use strict";

(function () {
  let pending = null;
  let inflight = false;
  let again = false;

  async function refresh() {
    if (inflight) {
      again = true;
      return;
    }
    inflight = true;
    try {
      const response = await fetch(location.href, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const region of document.querySelectorAll("[data-live][id]")) {
        const replacement = fresh.getElementById(region.id);
        if (replacement && replacement.innerHTML !== region.innerHTML) {
          // A form with focus inside keeps its typed text: only swap when idle.
          if (region.contains(document.activeElement) && region.querySelector("textarea")) continue;
          region.innerHTML = replacement.innerHTML;
        }
      }
      const bubbles = document.getElementById("bubbles");
      if (bubbles) bubbles.scrollTop = bubbles.scrollHeight;
    } finally {
      inflight = false;
      if (again) {
        again = false;
        schedule();
      }
    }
  }

  function schedule() {
    // Events come in bursts (a send is followed by three transitions): one render each.
    if (pending) return;
    pending = setTimeout(() => {
      pending = null;
      refresh();
    }, 50);
  }

  function connect() {
    const source = new EventSource("/emulator/events");
    source.addEventListener("hello", () => {
      document.body.dataset.live = "connected";
      schedule(); // catch up on whatever changed before the stream opened
    });
    for (const kind of ["message", "status", "callback", "rules", "reset"]) {
      source.addEventListener(kind, schedule);
    }
    source.onerror = () => {
      document.body.dataset.live = "reconnecting";
    };
  }

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    event.preventDefault();
    const data = new URLSearchParams(new FormData(form, event.submitter));
    // getAttribute: a control named "action" would shadow form.action.
    const response = await fetch(form.getAttribute("action"), { method: "POST", body: data, redirect: "manual" });
    if (response.type === "opaqueredirect" || response.ok) {
      const box = form.querySelector("textarea");
      if (box) box.value = "";
      schedule();
    } else {
      alert(await response.text());
    }
  });

  document.addEventListener("keydown", (event) => {
    // Enter sends the reply, Shift+Enter adds a line, as in messaging apps.
    const box = event.target;
    if (box instanceof HTMLTextAreaElement && event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", connect);
  } else {
    connect();
  }
})();
