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
