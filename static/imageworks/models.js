// Models page: row selection -> drawer, row navigation (j/k, arrows, Enter, Esc),
// keyboard shortcuts, copy buttons, htmx errors.
// Actions themselves live in the drawer (other features' buttons); shortcuts only click
// the well-known elements [data-shortcut="reload|lock|activate"].
(function () {
  "use strict";

  function toast(text, level) {
    document.dispatchEvent(new CustomEvent("showMessage", { detail: { level: level || "info", text: text } }));
  }

  function isTyping(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") {
      var type = (el.getAttribute("type") || "text").toLowerCase();
      return ["checkbox", "radio", "button", "submit", "reset", "range", "color"].indexOf(type) === -1;
    }
    return false;
  }

  function drawerBody() { return document.querySelector("#drawer .drawer-body"); }
  function tableRows() { return Array.prototype.slice.call(document.querySelectorAll("#models-grid tbody tr[data-pk]")); }
  function rowLink(tr) { return tr ? tr.querySelector("a.row-link") : null; }

  // ---- selection -------------------------------------------------------------------
  // Roving tabindex: one row link is in the Tab order (the selected row, else the first);
  // j/k and the arrow keys move focus between rows, Enter opens the drawer.
  function markSelected() {
    var body = drawerBody();
    var pk = body ? body.dataset.entryPk : null;
    var rows = tableRows();
    var tabRow = null;
    rows.forEach(function (tr) {
      var on = pk !== null && tr.dataset.pk === pk;
      tr.classList.toggle("selected", on);
      tr.setAttribute("aria-selected", on ? "true" : "false");
      if (on) tabRow = tr;
    });
    var focused = document.activeElement && document.activeElement.closest && document.activeElement.closest("#models-grid tbody tr[data-pk]");
    tabRow = focused || tabRow || rows[0];
    rows.forEach(function (tr) {
      var link = rowLink(tr);
      if (link) link.setAttribute("tabindex", tr === tabRow ? "0" : "-1");
    });
    var layout = document.getElementById("models-layout");
    if (layout) layout.classList.toggle("has-drawer", !!body);
    document.body.classList.toggle("drawer-open", !!body);
  }

  function focusDrawer() {
    var drawer = document.getElementById("drawer");
    var title = drawer && drawer.querySelector(".drawer-title");
    if (!title) return;
    drawer.scrollTop = 0;
    title.setAttribute("tabindex", "-1");
    title.focus({ preventScroll: true });
  }

  function openDrawer(url) {
    if (!window.htmx) { window.location.href = url; return; }
    htmx.ajax("GET", url, { target: "#drawer", swap: "innerHTML" }).then(function () {
      if (location.pathname + location.search !== url) history.pushState({ drawer: url }, "", url);
      markSelected();
      focusDrawer();
    });
  }

  function closeDrawer(href) {
    var drawer = document.getElementById("drawer");
    var body = drawerBody();
    if (!drawer || !body) return false;
    var pk = body.dataset.entryPk;
    drawer.innerHTML = "";
    history.pushState({}, "", href || (document.querySelector("#model-filters") || {}).action || "/models/");
    markSelected();
    // Back to the row the drawer was about (keyboard users continue from there).
    var tr = document.querySelector('#models-grid tbody tr[data-pk="' + pk + '"]');
    var link = rowLink(tr);
    if (link) { link.setAttribute("tabindex", "0"); link.focus(); }
    return true;
  }

  function moveRow(step) {
    var rows = tableRows();
    if (!rows.length) return false;
    var active = document.activeElement;
    var current = active && active.closest && active.closest("#models-grid tbody tr[data-pk]");
    if (!current) current = document.querySelector("#models-grid tbody tr.selected");
    var index = current ? rows.indexOf(current) + step : (step > 0 ? 0 : rows.length - 1);
    index = Math.max(0, Math.min(rows.length - 1, index));
    var link = rowLink(rows[index]);
    if (!link) return false;
    rows.forEach(function (tr) { var l = rowLink(tr); if (l) l.setAttribute("tabindex", tr === rows[index] ? "0" : "-1"); });
    link.focus({ preventScroll: true });
    rows[index].scrollIntoView({ block: "nearest" });
    return true;
  }

  document.addEventListener("click", function (evt) {
    // Copy buttons (hash, endpoint info, whole entry).
    var copyBtn = evt.target.closest(".copy");
    if (copyBtn) {
      evt.preventDefault();
      evt.stopPropagation();
      var text = copyBtn.dataset.copy;
      if (copyBtn.dataset.copyFrom) {
        var src = document.getElementById(copyBtn.dataset.copyFrom);
        text = src ? JSON.stringify(JSON.parse(src.textContent), null, 2) : "";
      }
      copyText(text || "", copyBtn);
      return;
    }
    var close = evt.target.closest("[data-close-drawer]");
    if (close && !evt.ctrlKey && !evt.metaKey) {
      evt.preventDefault();
      closeDrawer(close.getAttribute("href"));
      return;
    }
    // "Skip to the models table": land on the current row, not on the sort links.
    var skip = evt.target.closest("[data-skip-to-rows]");
    if (skip) {
      var rows = tableRows();
      var target = document.querySelector("#models-grid tbody tr.selected") || rows[0];
      if (target && rowLink(target)) {
        evt.preventDefault();
        rowLink(target).setAttribute("tabindex", "0");
        rowLink(target).focus();
      }
      return;
    }
    // One-click "Show testing models" (empty search): tick the filter box, the form refreshes.
    var tick = evt.target.closest("[data-tick]");
    if (tick) {
      var box = document.getElementById(tick.dataset.tick);
      if (box && window.htmx) {
        evt.preventDefault();
        box.checked = true;
        box.dispatchEvent(new Event("change", { bubbles: true }));
      }
      return;
    }
    // Row click (anywhere on the row, including the name link) opens the drawer.
    var tr = evt.target.closest("#models-grid tbody tr[data-pk]");
    if (!tr || evt.ctrlKey || evt.metaKey || evt.shiftKey || evt.button !== 0) return;
    if (evt.target.closest("button, input, select, textarea, .col-select")) return;
    var link = tr.querySelector("a.row-link");
    if (!link) return;
    evt.preventDefault();
    openDrawer(link.getAttribute("href"));
  });

  // Back/forward between drawer URLs that htmx did not push itself.
  window.addEventListener("popstate", function () {
    var m = location.pathname.match(/\/models\/(\d+)\/$/);
    if (m && window.htmx && document.getElementById("drawer")) {
      htmx.ajax("GET", location.pathname + location.search, { target: "#drawer", swap: "innerHTML" }).then(markSelected);
    } else if (/\/models\/$/.test(location.pathname) && document.getElementById("drawer")) {
      document.getElementById("drawer").innerHTML = "";
      markSelected();
    }
  });

  function copyText(text, btn) {
    function done() {
      btn.classList.add("copied");
      setTimeout(function () { btn.classList.remove("copied"); }, 1200);
      toast("Copied to clipboard", "success");
    }
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { fallbackCopy(text) && done(); });
    } else if (fallbackCopy(text)) {
      done();
    } else {
      toast("Copy failed: select the text and copy it by hand", "warning");
    }
  }
  function fallbackCopy(text) {
    var ta = document.createElement("textarea");
    ta.value = text; ta.setAttribute("readonly", ""); ta.style.position = "fixed"; ta.style.opacity = "0";
    document.body.appendChild(ta); ta.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    ta.remove();
    return ok;
  }

  // ---- htmx glue --------------------------------------------------------------------
  document.addEventListener("htmx:afterSettle", markSelected);
  document.addEventListener("DOMContentLoaded", markSelected);

  // Keep shared URLs short: drop empty fields (and a default page size) from GETs.
  document.addEventListener("htmx:configRequest", function (evt) {
    if (evt.detail.verb !== "get") return;
    var params = evt.detail.parameters;
    var defaultSize = document.querySelector("select[name=per_page][data-default]");
    var keys = [];
    if (params && typeof params.keys === "function") {
      for (var k of params.keys()) keys.push(k);
      keys.forEach(function (key) {
        var values = params.getAll(key).filter(function (v) {
          return v !== "" && !(key === "per_page" && defaultSize && v === defaultSize.dataset.default);
        });
        params.delete(key);
        values.forEach(function (v) { params.append(key, v); });
      });
    }
  });

  // The roles dropdown summary follows the ticked boxes; a click elsewhere closes it.
  document.addEventListener("change", function (evt) {
    var dd = evt.target.closest && evt.target.closest(".fb-dropdown");
    if (!dd) return;
    var ticked = Array.prototype.map.call(dd.querySelectorAll("input:checked"), function (i) { return i.value; });
    var prefix = dd.dataset.prefix || "Roles", empty = dd.dataset.empty || "Any role";
    var text = ticked.length ? prefix + ": " + ticked.join(", ") : empty;
    dd.querySelector("summary").textContent = text.length > 36 ? text.slice(0, 35) + "…" : text;
  });
  document.addEventListener("click", function (evt) {
    document.querySelectorAll(".fb-dropdown[open]").forEach(function (dd) {
      if (!dd.contains(evt.target)) dd.removeAttribute("open");
    });
  });

  // Reload returns to the view the user is looking at now (htmx may have changed the URL).
  document.addEventListener("submit", function (evt) {
    if (evt.target.id !== "reload-form" && evt.target.id !== "columns-form") return;
    var next = evt.target.querySelector("input[name=next]");
    if (next) next.value = location.pathname + location.search;
  });

  // The page-size select lives in the swapped region but belongs to the filter form.
  document.addEventListener("change", function (evt) {
    var sel = evt.target;
    if (!sel.matches || !sel.matches("select[name=per_page][form]")) return;
    var form = document.getElementById(sel.getAttribute("form"));
    if (!form) return;
    if (window.htmx) htmx.trigger(form, "submit"); else form.submit();
  });

  function requestFailed(evt, reason) {
    var target = evt.detail && evt.detail.target;
    if (!target) return;
    if (target.id === "drawer" || /-table$/.test(target.id || "")) {
      var what = target.id === "drawer" ? "the model details" : "the table";
      toast("Could not load " + what + " (" + reason + "). Try again; if it persists, reload the page.", "error");
    } else if (target.matches(".be-card, [data-panel]")) {
      // A card or panel that failed says so in place; the rest of the page stays usable.
      target.classList.remove("is-loading");
      target.innerHTML = '<p class="panel-error">Could not load (' + reason + '). <a href="">Reload the page</a> to retry.</p>';
    }
  }
  document.addEventListener("htmx:responseError", function (evt) {
    var xhr = evt.detail && evt.detail.xhr;
    requestFailed(evt, xhr ? "HTTP " + xhr.status : "error");
  });
  document.addEventListener("htmx:sendError", function (evt) { requestFailed(evt, "network error"); });

  // ---- live refresh (entryChanged / slotChanged) --------------------------------------
  // The table re-fetches its own URL and the drawer its badges/facts/serving slot
  // (hx-trigger in the templates; site.js keeps them from being lost or swapped under an
  // open dialog: the drawer is their data-dialog-scope). Keep the table's scroll position.
  var tableScroll = null;
  document.addEventListener("htmx:beforeSwap", function (evt) {
    var cfg = evt.detail.requestConfig;
    if (evt.detail.target && evt.detail.target.id === "models-table" && cfg && cfg.elt && cfg.elt.id === "table-refresh") {
      var box = evt.detail.target.querySelector(".table-scroll");
      tableScroll = box ? { left: box.scrollLeft, top: box.scrollTop } : null;
    }
  });
  document.addEventListener("htmx:afterSwap", function (evt) {
    if (!tableScroll) return;
    var box = document.querySelector("#models-table .table-scroll");
    if (box) { box.scrollLeft = tableScroll.left; box.scrollTop = tableScroll.top; }
    tableScroll = null;
  });

  // A verify job that ended (its POST answer or its own polling) re-renders the whole
  // Hash & lock panel once, so the lock state and gate line agree with the job's result.
  // The panel's own refresh swaps the panel itself (target === panel): no loop.
  document.addEventListener("htmx:afterSettle", function (evt) {
    var target = evt.target;  // the swapped-in element (detail.target may be detached)
    var panel = target && target.closest && target.closest(".verify-panel");
    if (!panel || panel === target) return;
    var job = panel.querySelector(".verify-job .job-status[data-job-status]");
    if (!job || ["succeeded", "failed", "cancelled"].indexOf(job.dataset.jobStatus) === -1) return;
    if (window.htmx) htmx.trigger(panel, "verifyFinished");
  });

  // ---- keyboard shortcuts -------------------------------------------------------------
  function shortcutTarget(kind) {
    var body = drawerBody();
    if (!body) { toast("Select a model first", "warning"); return null; }
    var el = body.querySelector('[data-shortcut="' + kind + '"]');
    var allowed = body.dataset[kind === "lock" ? "canLock" : "canActivate"] === "1";
    if (!allowed) { toast("Not permitted", "warning"); return null; }
    if (!el) {
      if (kind === "activate" && body.dataset.isVllm !== "1") toast("Not eligible for activation: only vLLM models can be activated", "warning");
      else toast(kind === "activate" ? "Not eligible for activation" : "Lock is not available for this model", "warning");
      return null;
    }
    if (el.disabled || el.getAttribute("aria-disabled") === "true") {
      var reason = el.dataset.reason || el.getAttribute("title") || (kind === "activate" ? "Not eligible for activation" : "Not available");
      toast(reason, "warning");
      return null;
    }
    return el;
  }

  document.addEventListener("keydown", function (evt) {
    if (evt.defaultPrevented || evt.ctrlKey || evt.metaKey || evt.altKey) return;
    var active = document.activeElement;
    if (evt.key === "Escape" && active && active.id === "id_q") {
      evt.preventDefault(); // keep the query (a search input would clear itself)
      active.blur();
      return;
    }
    if (isTyping(evt.target) || isTyping(active)) return;
    if (document.querySelector("dialog[open]") && evt.key !== "?") return;
    switch (evt.key) {
      case "f": {
        var q = document.getElementById("id_q");
        if (q) { evt.preventDefault(); q.focus(); q.select(); }
        break;
      }
      case "j":
      case "k": {
        if (!document.getElementById("models-layout")) return;
        if (moveRow(evt.key === "j" ? 1 : -1)) evt.preventDefault();
        break;
      }
      case "ArrowDown":
      case "ArrowUp": {
        // Arrows move between rows only from inside the table: elsewhere they scroll.
        if (!(active && active.closest && active.closest("#models-grid tbody"))) return;
        if (moveRow(evt.key === "ArrowDown" ? 1 : -1)) evt.preventDefault();
        break;
      }
      case "Escape": {
        if (!document.getElementById("models-layout")) return;
        if (closeDrawer()) evt.preventDefault();
        break;
      }
      case "r": {
        var reload = document.querySelector('[data-shortcut="reload"]');
        if (!document.getElementById("models-layout")) return;
        evt.preventDefault();
        if (!reload || reload.disabled) { toast("Not permitted" + (reload && reload.dataset.reason ? ": " + reload.dataset.reason.charAt(0).toLowerCase() + reload.dataset.reason.slice(1) : ""), "warning"); return; }
        toast("Reloading the registry…", "info");
        reload.click();
        break;
      }
      case "l":
      case "a": {
        if (!document.getElementById("models-layout")) return;
        evt.preventDefault();
        var el = shortcutTarget(evt.key === "l" ? "lock" : "activate");
        if (el) el.click();
        break;
      }
      case "?": {
        var help = document.getElementById("shortcuts-help");
        if (!help) return;
        evt.preventDefault();
        if (help.open) help.close(); else help.showModal();
        break;
      }
    }
  });

  // Row selection for the bulk actions and Compare: remembered across table refreshes
  // (sorting, paging and entryChanged re-render the table region).
  var picked = new Set();
  function syncSelection() {
    var boxes = document.querySelectorAll('#models-grid tbody input[name=select]');
    var all = document.querySelector('#models-grid [data-select-all]');
    var onPage = 0;
    boxes.forEach(function (box) {
      box.checked = picked.has(box.value);
      if (box.checked) onPage += 1;
    });
    if (all) {
      all.checked = boxes.length > 0 && onPage === boxes.length;
      all.indeterminate = onPage > 0 && onPage < boxes.length;
    }
    var count = document.querySelector("[data-selected-count]");
    if (count) count.textContent = picked.size + " selected";
    // Rows ticked on other pages still go with the form.
    var form = document.getElementById("bulk-form");
    if (form) {
      form.querySelectorAll("input[data-carried]").forEach(function (i) { i.remove(); });
      var shown = new Set(Array.prototype.map.call(boxes, function (b) { return b.value; }));
      picked.forEach(function (pk) {
        if (shown.has(pk)) return;
        var hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "select"; hidden.value = pk;
        hidden.setAttribute("data-carried", "");
        form.appendChild(hidden);
      });
    }
  }
  document.addEventListener("change", function (evt) {
    var el = evt.target;
    if (!el.closest || !el.closest("#models-grid")) return;
    if (el.matches("[data-select-all]")) {
      document.querySelectorAll('#models-grid tbody input[name=select]').forEach(function (box) {
        if (el.checked) picked.add(box.value); else picked.delete(box.value);
      });
    } else if (el.matches("input[name=select]")) {
      if (el.checked) picked.add(el.value); else picked.delete(el.value);
    } else {
      return;
    }
    syncSelection();
  });
  document.addEventListener("htmx:afterSettle", syncSelection);

  // Column chooser: ↑/↓ reorder the list in place (without JavaScript they submit).
  document.addEventListener("click", function (evt) {
    var btn = evt.target.closest && evt.target.closest("#columns-form [data-move]");
    if (!btn) return;
    evt.preventDefault();
    var li = btn.closest("li");
    if (btn.dataset.move === "-1" && li.previousElementSibling) li.parentNode.insertBefore(li, li.previousElementSibling);
    else if (btn.dataset.move === "1" && li.nextElementSibling) li.parentNode.insertBefore(li.nextElementSibling, li);
    btn.focus();
  });
})();
