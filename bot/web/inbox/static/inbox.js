// Keeps the queue fresh without a reload: asks the server for the rendered rows
// every few seconds (the server escapes everything it renders).
(function () {
  "use strict";
  var list = document.getElementById("queue");
  var summary = document.getElementById("queue-summary");
  if (!list || !window.fetch) return;
  var every = Math.max(1, Number(list.dataset.every) || 10) * 1000;
  var title = document.title;
  var last = null;

  function refresh() {
    if (document.hidden) return;  // a phone in a pocket does not need to poll
    fetch(list.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (resp) {
        if (resp.status === 401) { window.location.reload(); return null; }  // logged out: show the login
        return resp.ok ? resp.json() : null;
      })
      .then(function (data) {
        if (!data) return;
        if (data.html !== last) { list.innerHTML = data.html; last = data.html; }
        if (summary && data.summary) summary.innerHTML = data.summary;  // the totals move as cases come and go
        document.title = data.unread ? "(" + data.unread + ") " + title : title;
      })
      .catch(function () { /* offline for a moment: the next tick tries again */ });
  }

  setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
