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

// The reply box's live count: characters and SMS segments as the reply will go out (curly quotes
// and the like folded to GSM-7 first, as the server does: bot/conversation/segments.py gives the
// alphabets), and a warning before a third segment.
(function () {
  "use strict";
  var box = document.getElementById("reply-body");
  var out = document.getElementById("reply-count");
  if (!box || !out || !box.dataset.sms) return;
  var rules = JSON.parse(box.dataset.sms);
  var basic = new Set(Array.from(rules.basic));
  var extension = new Set(Array.from(rules.extension));
  var NEAR = 20;  // characters before a third segment when the warning starts

  function fold(text, table) {
    return Array.from(text).map(function (c) { return table[c] !== undefined ? table[c] : c; }).join("");
  }
  function isGsm(text) {
    return Array.from(text).every(function (c) { return basic.has(c) || extension.has(c); });
  }
  function units(text, gsm) {
    return Array.from(text).map(function (c) {
      return gsm ? (extension.has(c) ? 2 : 1) : (c.codePointAt(0) > 0xffff ? 2 : 1);
    });
  }
  function count(text) {
    if (!text) return 0;
    var gsm = isGsm(text);
    var limits = gsm ? rules.gsm : rules.ucs2;
    var each = units(text, gsm);
    if (each.reduce(function (a, b) { return a + b; }, 0) <= limits[0]) return 1;
    var parts = 1, used = 0;
    each.forEach(function (u) {
      if (used + u > limits[1]) { parts += 1; used = 0; }
      used += u;
    });
    return parts;
  }
  function asSent(text) {  // segments.to_gsm
    text = fold(text, rules.lookalikes);
    if (!isGsm(text)) {
      var folded = fold(text, rules.acute);
      if (isGsm(folded) && count(folded) < count(text)) return folded;
    }
    return text;
  }
  function leftBeforeThird(text) {
    var extra = 0;
    while (extra <= NEAR && count(text + "a".repeat(extra + 1)) < 3) extra += 1;
    return extra;
  }
  function fill(template, values) {
    return template.replace(/\{(\w+)\}/g, function (_, key) { return values[key]; });
  }

  function update() {
    var text = asSent(box.value);
    var texts = count(text);
    var line = fill(out.dataset.count, {
      chars: Array.from(text).length, texts: texts, alphabet: isGsm(text) ? out.dataset.gsm : out.dataset.ucs2
    });
    out.classList.remove("warn");
    if (texts >= 3) {
      line += " · " + fill(out.dataset.warn, { texts: texts });
      out.classList.add("warn");
    } else if (texts === 2 && leftBeforeThird(text) <= NEAR) {
      line += " · " + fill(out.dataset.near, { left: leftBeforeThird(text) });
      out.classList.add("warn");
    }
    out.textContent = line;
  }

  box.addEventListener("input", update);
  update();
})();
