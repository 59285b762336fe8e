// squidmesh dashboard: auto-refresh, remembered per browser. No other script runs.
(function () {
  "use strict";
  var key = "squidmesh.autoRefresh";
  var box = document.getElementById("auto-refresh");
  var seconds = parseInt(document.body.getAttribute("data-refresh-seconds"), 10) || 10;
  if (!box) { return; }
  box.checked = window.localStorage.getItem(key) === "on";
  var timer = null;
  function busy() {
    // Never reload under someone typing in a filter or a control form.
    var active = document.activeElement;
    return active && (active.tagName === "INPUT" || active.tagName === "TEXTAREA" || active.tagName === "SELECT");
  }
  function schedule() {
    if (timer) { window.clearTimeout(timer); timer = null; }
    if (!box.checked) { return; }
    timer = window.setTimeout(function () {
      if (busy()) { schedule(); } else { window.location.reload(); }
    }, seconds * 1000);
  }
  box.addEventListener("change", function () {
    window.localStorage.setItem(key, box.checked ? "on" : "off");
    schedule();
  });
  schedule();
})();
