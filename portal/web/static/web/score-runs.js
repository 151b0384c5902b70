// Live progress of score runs: while a run is running, polls the progress URL named by the table at most
// every 5 seconds and updates each row in place; stops as soon as no run is running. A failed request is
// retried less and less often; a hidden tab does not poll until it is shown again. No inline script: the
// Content-Security-Policy allows only files from this site.
(function () {
  "use strict";
  var table = document.querySelector("[data-progress-url]");
  if (!table) { return; }
  var url = table.getAttribute("data-progress-url");
  var INTERVAL = 5000;        // the shortest time between two requests
  var LONGEST = 60000;        // the longest wait after repeated failures
  var delay = INTERVAL;
  var timer = null;
  var waitingForTab = false;

  function running() { return table.getAttribute("data-running") === "true"; }

  function update(run) {
    var row = table.querySelector('tr[data-run-id="' + run.id + '"]');
    if (!row) { return false; }
    var bar = row.querySelector("progress");
    if (bar) { bar.value = run.progress; }
    var set = function (name, text) {
      var cell = row.querySelector('[data-field="' + name + '"]');
      if (cell) { cell.textContent = text; }
    };
    set("percent", run.percent + "%");
    set("chunks", run.chunks_done + " / " + run.chunks_total);
    set("consumers", run.consumers_scored + " / " + run.consumers_planned);
    set("finished", run.finished_at);
    var badge = row.querySelector('[data-field="status"]');
    if (badge) { badge.textContent = run.status_label; badge.className = "badge " + run.status; }
    return true;
  }

  function schedule() {
    if (timer !== null || !running()) { return; }
    timer = window.setTimeout(poll, delay);
  }

  function failed() {
    delay = Math.min(delay * 2, LONGEST);
    schedule();
  }

  function poll() {
    timer = null;
    if (!running()) { return; }
    if (document.hidden) { waitingForTab = true; return; }
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("progress: HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        var known = true;
        data.runs.forEach(function (run) { known = update(run) && known; });
        if (!known) { window.location.reload(); return; }
        table.setAttribute("data-running", data.running ? "true" : "false");
        delay = INTERVAL;
        schedule();
      })
      .catch(failed);
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && waitingForTab) { waitingForTab = false; schedule(); }
  });

  schedule();
})();
