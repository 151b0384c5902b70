// The idle-session warning: the dialog (role=alertdialog) opens a few minutes before the server ends the
// session, with the time left counting down; "Stay signed in" posts to the keep-alive URL (CSRF token from
// the form) and restarts the count from the server's answer; when the time is up the page goes to the login
// page with a notice. The seconds left come from the page (data-seconds-left, the server's own count), never
// from a constant here. No inline script: the Content-Security-Policy allows only files from this site.
(function () {
  "use strict";
  var dialog = document.getElementById("session-timer");
  if (!dialog || typeof dialog.showModal !== "function") { return; }
  var warning = parseInt(dialog.getAttribute("data-warning-seconds"), 10) * 1000;
  var loginUrl = dialog.getAttribute("data-login-url");
  var form = dialog.querySelector("form[data-extend]");
  var stay = dialog.querySelector("[data-stay]");
  var countdown = dialog.querySelector("[data-countdown]");
  var error = dialog.querySelector("[data-error]");
  var SLACK = 1500;  // the server ends the session just after the last second; arrive after it has
  var deadline = 0;
  var warnTimer = null;
  var endTimer = null;
  var tickTimer = null;
  var returnFocus = null;

  function format(ms) {
    var seconds = Math.max(0, Math.ceil(ms / 1000));
    var minutes = Math.floor(seconds / 60);
    var rest = seconds % 60;
    return minutes + ":" + (rest < 10 ? "0" : "") + rest;
  }

  function tick() {
    countdown.textContent = format(deadline - Date.now());
  }

  function end() {
    window.location.assign(loginUrl);
  }

  function open() {
    if (dialog.open) { return; }
    returnFocus = document.activeElement;
    error.hidden = true;
    tick();
    tickTimer = window.setInterval(tick, 1000);
    dialog.showModal();
    stay.focus();
  }

  function close() {
    if (tickTimer !== null) { window.clearInterval(tickTimer); tickTimer = null; }
    if (dialog.open) { dialog.close(); }
    if (returnFocus && typeof returnFocus.focus === "function") { returnFocus.focus(); }
  }

  function start(secondsLeft) {
    window.clearTimeout(warnTimer);
    window.clearTimeout(endTimer);
    deadline = Date.now() + secondsLeft * 1000;
    warnTimer = window.setTimeout(open, Math.max(0, secondsLeft * 1000 - warning));
    endTimer = window.setTimeout(end, secondsLeft * 1000 + SLACK);
  }

  dialog.addEventListener("close", function () {
    if (tickTimer !== null) { window.clearInterval(tickTimer); tickTimer = null; }
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    stay.disabled = true;
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    })
      .then(function (response) {
        if (response.status === 401) { end(); return null; }
        if (!response.ok) { throw new Error("keep-alive: HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        if (data === null) { return; }
        start(data.seconds_left);
        close();
      })
      .catch(function () { error.hidden = false; })
      .then(function () { stay.disabled = false; });
  });

  start(parseInt(dialog.getAttribute("data-seconds-left"), 10));
}());
