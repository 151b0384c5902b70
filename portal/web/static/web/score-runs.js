// Live progress of score runs: polls the progress URL named by the table while a run is running and updates
// each row in place. No inline script: the Content-Security-Policy allows only files from this site.
(function () {
  "use strict";
  var table = document.querySelector("[data-progress-url]");
  if (!table) { return; }
  var url = table.getAttribute("data-progress-url");
  var delay = 2000;

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

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var known = true;
        data.runs.forEach(function (run) { known = update(run) && known; });
        if (!known) { window.location.reload(); return; }
        table.setAttribute("data-running", data.running ? "true" : "false");
        if (data.running) { window.setTimeout(poll, delay); }
      });
  }

  if (table.getAttribute("data-running") === "true") { window.setTimeout(poll, delay); }
})();
