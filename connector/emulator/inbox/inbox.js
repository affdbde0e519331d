// SPDX-License-Identifier: MIT
// The inbox's only script; no library, no build step. It keeps the server-rendered page
// live: on every event from /emulator/events it re-fetches the current URL and swaps the
// regions marked data-live, leaving forms the user is typing in alone. Forms are posted
// in the background so the page never reloads (a form with data-confirm asks first);
// "More conversations" appends the next page in place. Without this script the forms
// still work, a delete asks on a page of its own, and "More" is a plain link.
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
      const href = location.href;
      const response = await fetch(href, { headers: { Accept: "text/html" } });
      if (!response.ok) return;
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      if (location.href !== href) {
        // "More" changed what the page shows while this was on its way: this render
        // would take the appended conversations away again. Render the new URL instead.
        again = true;
        return;
      }
      for (const region of document.querySelectorAll("[data-live][id]")) {
        const replacement = fresh.getElementById(region.id);
        if (replacement && replacement.innerHTML !== region.innerHTML) {
          // A reply being typed is not swapped away (the regions inside it still are).
          const box = region.querySelector("textarea");
          if (box && (box.value || document.activeElement === box)) continue;
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
    for (const kind of ["message", "status", "callback", "rules", "refused", "deleted", "reset"]) {
      source.addEventListener(kind, schedule);
    }
    source.onerror = () => {
      document.body.dataset.live = "reconnecting";
    };
  }

  async function more(link) {
    link.setAttribute("aria-busy", "true");
    const response = await fetch(link.href, { headers: { Accept: "text/html" } });
    if (!response.ok) {
      link.removeAttribute("aria-busy");
      return;
    }
    const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
    const list = document.querySelector("#threads ul.threads");
    // A conversation that moved up since this page was rendered is not listed twice.
    const shown = new Set(Array.from(list.children, (item) => item.dataset.thread));
    for (const item of fresh.querySelectorAll("#threads ul.threads > li")) {
      if (!shown.has(item.dataset.thread)) list.append(document.adoptNode(item));
    }
    const next = fresh.getElementById("more-threads");
    if (next) link.replaceWith(document.adoptNode(next));
    else link.remove();
    // The URL (and so live updates, reloads and the conversation links) keeps how many
    // conversations are shown, counted from the newest.
    const keep = (href) => {
      const url = new URL(href, location.href);
      url.searchParams.delete("before");
      url.searchParams.set("limit", String(list.children.length));
      return url.pathname + url.search;
    };
    for (const anchor of list.querySelectorAll("a")) anchor.setAttribute("href", keep(anchor.href));
    history.replaceState(null, "", keep(location.href));
  }

  document.addEventListener("click", (event) => {
    const link = event.target instanceof Element ? event.target.closest("a.more") : null;
    if (!link || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    // A page opened at an older position (no-script paging) keeps plain links.
    if (new URL(location.href).searchParams.has("before")) return;
    event.preventDefault();
    more(link);
  });

  document.addEventListener("submit", async (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || form.method.toLowerCase() !== "post") return;
    event.preventDefault();
    const question = form.dataset.confirm;
    if (question && !confirm(question)) return;
    const data = new URLSearchParams(new FormData(form, event.submitter));
    if (question) data.set("confirmed", "yes");
    // getAttribute: a control named "action" would shadow form.action.
    const response = await fetch(form.getAttribute("action"), { method: "POST", body: data, redirect: "manual" });
    if (response.type === "opaqueredirect" || response.ok) {
      if (form.dataset.follow) {
        location.assign(form.dataset.follow); // e.g. the list, once a conversation is gone
        return;
      }
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
