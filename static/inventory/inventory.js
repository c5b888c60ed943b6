// Disk & reconcile pages: the fix dialog, copy buttons, the plan preview. No framework.
(function () {
  "use strict";
  function copyText(text, btn) {
    var done = function () { var old = btn.textContent; btn.textContent = "Copied"; setTimeout(function () { btn.textContent = old; }, 1200); };
    if (navigator.clipboard && window.isSecureContext) { navigator.clipboard.writeText(text).then(done, done); return; }
    var ta = document.createElement("textarea");
    ta.value = text; ta.setAttribute("readonly", ""); ta.style.position = "fixed"; ta.style.opacity = "0";
    document.body.appendChild(ta); ta.select();
    try { document.execCommand("copy"); } catch (e) { /* ignore */ }
    ta.remove(); done();
  }
  document.addEventListener("click", function (evt) {
    var copyBtn = evt.target.closest(".copy[data-copy]");
    if (copyBtn) { evt.preventDefault(); copyText(copyBtn.dataset.copy || "", copyBtn); return; }
    // A fix link loads its preview into the dialog (htmx) and opens it; without JS it
    // is a plain link to the fix page.
    var fix = evt.target.closest("[data-open-fix]");
    if (fix) {
      var dlg = document.getElementById("fix-dialog");
      var body = document.getElementById("fix-body");
      if (dlg && dlg.showModal) {
        if (body) body.innerHTML = '<p class="muted"><span class="spinner" aria-hidden="true"></span> Loading…</p>';
        if (!dlg.open) dlg.showModal();
      }
    }
    // "Select all" boxes of the reclaim tables.
    var all = evt.target.closest("[data-select-all]");
    if (all) {
      var scope = document.getElementById(all.dataset.selectAll);
      if (scope) scope.querySelectorAll("input[name=select]:not(:disabled)").forEach(function (c) { c.checked = all.checked; });
    }
  });
  // The plan preview: bring it into view once it has arrived.
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (evt.target && evt.target.id === "plan") evt.target.scrollIntoView({ block: "start", behavior: "smooth" });
  });
})();
