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

  // ---- live panels: never lost, never under an open dialog ---------------------------
  // Panels marked data-live-refresh (with an id and "liveRefresh" in their hx-trigger)
  // re-fetch themselves on the live events above. Two rules keep them true and usable:
  //
  // 1. A live refresh never swaps content under an open confirm dialog (the operator is
  //    reading it): while a <dialog open> is inside the panel's data-dialog-scope
  //    ancestor (or the panel), the refresh waits and runs when the dialog closes.
  // 2. A change is never lost. Two changes close together (an activation ends:
  //    slotChanged from the slot watch, actionsChanged from /live/) each trigger the
  //    refresh. While the first is in flight htmx drops the second (hx-sync drop) or
  //    queues it on the element that the first answer replaces (outerHTML), where it
  //    never runs; if the first answer was read before the second change, the panel
  //    stayed stale. So a panel that hears one of its events while its refresh is in
  //    flight refreshes once more after.
  // 3. The operator's own request wins, but does not hide a change. The table's live
  //    refresh is hx-sync="#model-filters:drop": while a filter, sort or page request
  //    (all synced on that form) is in flight, htmx drops it without a word, and if
  //    that answer was read before the change the table stayed stale. A change heard
  //    while such a request is in flight refreshes the panel once it has ended.
  var LIVE_EVENTS = ["entryChanged", "slotChanged", "actionsChanged", "healthChanged"];
  var refreshing = {};  // panel id -> {elt, cause, listens: [event names], again}
  function hears(panel, name) {  // the live event *name* is in the panel's hx-trigger
    return (panel.getAttribute("hx-trigger") || "").indexOf(name) !== -1;
  }
  function livePanel(elt) {
    return elt && elt.id && elt.hasAttribute && elt.hasAttribute("data-live-refresh") ? elt : null;
  }
  function refreshLater(id) {
    var now = document.getElementById(id);  // the panel in the page now (maybe swapped)
    if (now && window.htmx) htmx.trigger(now, "liveRefresh");
  }
  function refreshAgain(id, state) {
    if (refreshing[id] === state) delete refreshing[id];
    if (state.again) refreshLater(id);
  }
  var waiting = {};  // panel id -> the open dialog it waits for (one listener each)
  function waitForDialog(elt) {
    var scope = elt.closest("[data-dialog-scope]") || elt;
    var open = scope.querySelector("dialog[open]");
    if (open && waiting[elt.id] !== open) {
      waiting[elt.id] = open;
      open.addEventListener("close", function () {
        if (waiting[elt.id] === open) delete waiting[elt.id];
        refreshLater(elt.id);
      }, { once: true });
    }
    return !!open;
  }
  document.addEventListener("htmx:beforeRequest", function (evt) {
    var elt = livePanel(evt.detail && evt.detail.elt);
    if (!elt) return;
    if (waitForDialog(elt)) {
      evt.preventDefault();
      return;
    }
    refreshing[elt.id] = {
      elt: elt,
      cause: (evt.detail.requestConfig || {}).triggeringEvent || null,
      listens: LIVE_EVENTS.filter(function (name) { return hears(elt, name); }),
      again: false,
    };
  });
  LIVE_EVENTS.forEach(function (name) {
    document.addEventListener(name, function (evt) {
      Object.keys(refreshing).forEach(function (id) {
        var state = refreshing[id];
        if (state.cause !== evt && state.listens.indexOf(name) !== -1) state.again = true;
      });
      document.querySelectorAll("[data-live-refresh][hx-sync]").forEach(function (panel) {
        var source = dropSource(panel);
        if (source && hears(panel, name) && panel.id && syncBusy(source)) {
          (afterOwn[source] = afterOwn[source] || {})[panel.id] = true;
        }
      });
    });
  });
  // Rule 3's bookkeeping: every request synced on an element (hx-sync="#id:..." or
  // "this", inherited as htmx does), from send to end, by its XMLHttpRequest (its
  // element may be swapped away before it ends).
  var syncedRequests = new Map();  // xhr -> id of the element it is synced on
  var afterOwn = {};  // that id -> {live panel id: true}: refresh when it is free
  function syncSource(elt) {
    var holder = elt.closest && elt.closest("[hx-sync]");
    if (!holder) return null;
    var on = holder.getAttribute("hx-sync").split(":")[0].trim();
    if (on === "this") return holder.id || null;
    return on.charAt(0) === "#" ? on.slice(1) : null;
  }
  function dropSource(panel) {
    var spec = (panel.getAttribute("hx-sync") || "").split(":");
    return spec.length === 2 && spec[1].trim() === "drop" ? syncSource(panel) : null;
  }
  function syncBusy(id) {
    var busy = false;
    syncedRequests.forEach(function (on, xhr) {
      // Aborted (0) without an afterRequest this page heard (its element was
      // detached): forget it, or the panel would wait for it for ever. A done one (4)
      // stays until its afterRequest: events its answer fires come before that.
      if (xhr.readyState === 0) syncedRequests.delete(xhr);
      else if (on === id) busy = true;
    });
    return busy;
  }
  function refreshAfterOwn(id) {
    if (syncBusy(id) || !afterOwn[id]) return;  // still taken: its next end does it
    var panels = Object.keys(afterOwn[id]);
    delete afterOwn[id];
    panels.forEach(refreshLater);
  }
  document.addEventListener("htmx:beforeSend", function (evt) {
    var elt = evt.detail && evt.detail.elt;
    var on = elt && !livePanel(elt) && syncSource(elt);
    if (on) syncedRequests.set(evt.detail.xhr, on);
  });
  document.addEventListener("htmx:afterRequest", function (evt) {
    var on = evt.detail && syncedRequests.get(evt.detail.xhr);
    if (!on) return;
    syncedRequests.delete(evt.detail.xhr);
    // After htmx's settle delay: the swapped-in panel has its triggers bound by then.
    var settle = (window.htmx && htmx.config.defaultSettleDelay) || 20;
    setTimeout(function () { refreshAfterOwn(on); }, settle + 30);
  });
  // A dialog opened while the refresh was in flight: keep the page, refresh on close.
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var elt = livePanel(evt.detail && evt.detail.requestConfig && evt.detail.requestConfig.elt);
    if (elt && evt.detail.shouldSwap && waitForDialog(elt)) evt.detail.shouldSwap = false;
  });
  // Ended with the panel still in the page (304, an error, an inner swap): it hears
  // afterRequest itself. Replaced by its answer: the old element is detached and hears
  // nothing, so wait for the swapped-in content to settle (htmx has bound its triggers).
  document.addEventListener("htmx:afterRequest", function (evt) {
    var elt = livePanel(evt.detail && evt.detail.elt);
    var state = elt && refreshing[elt.id];
    if (state && state.elt === elt && document.body.contains(elt)) {
      setTimeout(function () { refreshAgain(elt.id, state); }, 0);
    }
  });
  document.addEventListener("htmx:afterSettle", function (evt) {
    Object.keys(refreshing).forEach(function (id) {
      var state = refreshing[id];
      var now = document.getElementById(id);
      if (now && now !== state.elt && evt.target.contains(now)) refreshAgain(id, state);
    });
  });
})();
