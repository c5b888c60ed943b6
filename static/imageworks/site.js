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
})();
