// Site-wide behaviour: message auto-dismiss and <dialog> helpers. No framework.
(function () {
  "use strict";
  function autoDismiss(root) {
    (root || document).querySelectorAll(".msg-success, .msg-info").forEach(function (el) {
      if (el.dataset.timer) return;
      el.dataset.timer = "1";
      setTimeout(function () { el.remove(); }, 8000);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { autoDismiss(); });
  document.addEventListener("htmx:afterSwap", function (evt) { autoDismiss(evt.target); });

  // Phones: the Menu button shows/hides the navigation and the user box.
  function setMenu(open) {
    var bar = document.getElementById("topbar");
    var btn = bar && bar.querySelector(".nav-toggle");
    if (!btn) return;
    bar.classList.toggle("nav-open", open);
    btn.setAttribute("aria-expanded", open ? "true" : "false");
  }
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest(".nav-toggle");
    if (btn) { setMenu(btn.getAttribute("aria-expanded") !== "true"); return; }
    var bar = document.getElementById("topbar");
    if (bar && bar.classList.contains("nav-open") && !bar.contains(evt.target)) setMenu(false);
  });
  document.addEventListener("keydown", function (evt) {
    var bar = document.getElementById("topbar");
    if (evt.key === "Escape" && bar && bar.classList.contains("nav-open")) {
      setMenu(false);
      bar.querySelector(".nav-toggle").focus();
      evt.stopPropagation();
    }
  }, true);

  // A form that comes back with errors (htmx swap or a full page): move focus to the
  // first field in error, so the operator sees what to fix even when it is above the
  // visible part; the summary beside the buttons links to every field in error.
  var FIELD_IN_ERROR = "[aria-invalid=true]:not([type=hidden]), .field.has-error input:not([type=hidden]), .field.has-error select, .field.has-error textarea";
  function focusFirstError(root) {
    if (!root || !root.querySelector) return;
    var summary = root.querySelector("[data-error-summary]");
    if (!summary) return;
    var target = root.querySelector(FIELD_IN_ERROR) || summary;
    target.focus({ preventScroll: true });
    target.scrollIntoView({ block: "center" });
  }
  document.addEventListener("htmx:afterSettle", function (evt) { focusFirstError(evt.target); });
  document.addEventListener("DOMContentLoaded", function () { focusFirstError(document.querySelector("main")); });
  document.addEventListener("click", function (evt) {
    var link = evt.target.closest("[data-error-summary] a[href^='#']");
    if (!link) return;
    var field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    evt.preventDefault();
    field.focus({ preventScroll: true });
    field.scrollIntoView({ block: "center" });
  });
  // Buttons with data-open-dialog="id" open that <dialog> as a modal.
  document.addEventListener("click", function (evt) {
    var opener = evt.target.closest("[data-open-dialog]");
    if (opener) {
      var dlg = document.getElementById(opener.dataset.openDialog);
      if (dlg && dlg.showModal) { evt.preventDefault(); dlg.showModal(); }
    }
    var closer = evt.target.closest("[data-close-dialog]");
    if (closer) {
      var d = closer.closest("dialog");
      if (d) { evt.preventDefault(); d.close(); }
    }
  });
  // Elapsed-time counters ("Activating… 12s"): the server renders the seconds so far,
  // the page keeps counting without asking the server again.
  function tickElapsed() {
    var now = Date.now();
    document.querySelectorAll("[data-elapsed]").forEach(function (el) {
      if (!el.dataset.t0) el.dataset.t0 = String(now - (parseFloat(el.dataset.elapsed) || 0) * 1000);
      var s = Math.max(0, Math.round((now - parseFloat(el.dataset.t0)) / 1000));
      el.textContent = s < 90 ? s + "s" : Math.floor(s / 60) + "m " + (s % 60) + "s";
    });
  }
  setInterval(tickElapsed, 1000);
  // Server-sent toasts: HX-Trigger {"showMessage": {"level": "success", "text": "..."}}
  document.addEventListener("showMessage", function (evt) {
    var box = document.getElementById("messages");
    if (!box || !evt.detail) return;
    var div = document.createElement("div");
    div.className = "msg msg-" + (evt.detail.level || "info");
    div.setAttribute("role", "status");
    div.textContent = evt.detail.text || "";
    var close = document.createElement("button");
    close.className = "msg-close"; close.type = "button"; close.textContent = "×";
    close.setAttribute("aria-label", "Dismiss");
    close.onclick = function () { div.remove(); };
    div.appendChild(close);
    box.appendChild(div);
    autoDismiss(box);
  });
  // ---- live panels: one poll with an ETag (imageworks_site/live.py) ------------------
  // Every few seconds: GET /live/ with If-None-Match. 304 = nothing changed (no body);
  // 200 = {token, events}: fire each event on <body>, where the panels listen
  // (hx-trigger="entryChanged from:body" ...). Hidden tabs wait; they ask at once
  // when shown again. window.__livePollMs lets tests poll faster.
  var liveUrl = document.body && document.body.dataset.liveUrl;
  if (liveUrl && window.fetch) {
    var liveToken = "";
    var liveBusy = false;
    var livePoll = function () {
      if (liveBusy || document.hidden) return;
      liveBusy = true;
      var headers = { "Accept": "application/json" };
      if (liveToken) headers["If-None-Match"] = '"' + liveToken + '"';
      fetch(liveUrl, { headers: headers, cache: "no-store", credentials: "same-origin" })
        .then(function (resp) {
          if (resp.status !== 200) return null;
          return resp.json();
        })
        .then(function (data) {
          if (!data || !data.token) return;
          var first = !liveToken;
          liveToken = data.token;
          document.body.dataset.liveToken = liveToken;
          if (first) return;
          (data.events || []).forEach(function (name) {
            if (window.htmx) htmx.trigger(document.body, name, { live: true });
            else document.body.dispatchEvent(new CustomEvent(name, { detail: { live: true } }));
          });
        })
        .catch(function () { /* offline or signed out: try again next tick */ })
        .then(function () { liveBusy = false; });
    };
    var liveEvery = parseInt(document.body.dataset.livePollMs || "2000", 10) || 2000;
    setInterval(livePoll, liveEvery);
    document.addEventListener("DOMContentLoaded", livePoll);
    document.addEventListener("visibilitychange", function () { if (!document.hidden) livePoll(); });
  }
})();
