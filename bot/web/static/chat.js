// Web chat. Tiny on purpose: old phones, slow networks, no framework, no other host.
// Message text is always put on the page with textContent, never as HTML.
(function () {
  "use strict";
  var labels = JSON.parse(document.getElementById("labels").textContent);
  var lang = document.documentElement.lang in labels ? document.documentElement.lang : "en";
  var log = document.getElementById("log");
  var options = document.getElementById("options");
  var status = document.getElementById("status");
  var input = document.getElementById("text");
  var last = 0;        // id of the newest caseworker message shown
  var busy = false;    // one POST at a time: answers must stay in order
  var polling = false; // on a slow network a poll may outlast the 10 s tick

  function t(key) { return labels[lang][key]; }

  // Same-origin requests carry our Origin (the server checks it), though the page
  // itself sends no referrer anywhere.
  function call(method, url, body) {
    var init = {method: method, credentials: "same-origin", referrerPolicy: "same-origin",
                headers: {"Accept": "application/json"}};
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    return fetch(url, init).then(function (r) {
      if (!r.ok) { throw r.status; }
      return r.status === 204 ? {} : r.json();
    });
  }

  // Phone numbers in answers become tap-to-call links (built as elements, not HTML).
  var PHONE = /\b(?:\d{3}[-. ]?\d{3}[-. ]?\d{4}|911|988)\b/g;

  function fill(li, body) {
    var at = 0, m, a;
    PHONE.lastIndex = 0;
    while ((m = PHONE.exec(body)) !== null) {
      li.appendChild(document.createTextNode(body.slice(at, m.index)));
      a = document.createElement("a");
      a.href = "tel:" + m[0].replace(/\D/g, "");
      a.textContent = m[0];
      li.appendChild(a);
      at = m.index + m[0].length;
    }
    li.appendChild(document.createTextNode(body.slice(at)));
  }

  function add(who, body) {
    var li = document.createElement("li");
    var name = document.createElement("span");
    li.className = "msg " + who;
    name.className = who === "caseworker" ? "who" : "who hidden";
    name.textContent = t(who) + ": ";
    li.appendChild(name);
    if (who === "you") { li.appendChild(document.createTextNode(body)); } else { fill(li, body); }
    log.appendChild(li);
    return li;
  }

  function showOptions(list) {
    options.textContent = "";
    list.forEach(function (label) {
      var b = document.createElement("button");
      b.type = "button";
      b.className = "option";
      b.textContent = label;
      b.setAttribute("data-send", label);
      options.appendChild(b);
    });
  }

  // how: "typed", "tapped" (an option) or "switch" (the language button).
  function say(text, how) {
    if (busy || !text.trim()) { return; }
    busy = true;
    status.textContent = "";
    add("you", text).scrollIntoView({block: "nearest"});
    call("POST", "/chat/messages", {text: text}).then(function (data) {
      var first = data.replies.map(function (r) { return add("bot", r); })[0];
      showOptions(data.options);
      // Long answers (a list of places) are read from their top, not their end.
      if (first) { first.scrollIntoView({block: "start"}); }
      // The tapped button is gone: put keyboard and screen-reader users on the next choices.
      var choice = options.querySelector("button");
      if (how === "tapped") { (choice || input).focus({preventScroll: true}); }
    }, function (code) {
      status.textContent = t(code === 429 ? "busy" : "failed");
      if (how === "typed") { input.value = text; }
    }).then(function () { busy = false; });
  }

  function poll() {
    if (document.hidden || polling) { return; }
    polling = true;
    call("GET", "/chat/messages?after=" + last).then(function (data) {
      data.messages.forEach(function (m) { add(m.from, m.body).scrollIntoView({block: "nearest"}); });
      last = data.last;
    }, function () { /* try again at the next tick */ }).then(function () { polling = false; });
  }

  function relabel() {
    document.documentElement.lang = lang;
    document.getElementById("switch").lang = lang === "en" ? "es" : "en";
    Array.prototype.forEach.call(document.querySelectorAll("[data-t]"), function (el) {
      el.textContent = t(el.getAttribute("data-t"));
    });
  }

  document.getElementById("chat").addEventListener("submit", function (e) {
    e.preventDefault();
    var text = input.value;
    input.value = "";
    say(text, "typed");
  });

  options.addEventListener("click", function (e) {
    var text = e.target.getAttribute && e.target.getAttribute("data-send");
    if (text) { say(text, "tapped"); }
  });

  // The bot understands these words as "switch language"; the page follows.
  document.getElementById("switch").addEventListener("click", function () {
    if (busy) { return; }
    lang = lang === "en" ? "es" : "en";
    relabel();
    say(lang === "es" ? "español" : "english", "switch");
  });

  // Leave now: go at once, leave no trace in this browser, end the session on the server.
  document.getElementById("leave").addEventListener("click", function (e) {
    e.preventDefault();
    try { sessionStorage.clear(); localStorage.clear(); } catch (err) { /* storage blocked */ }
    log.textContent = "";
    fetch("/chat/leave", {method: "POST", keepalive: true, credentials: "same-origin",
                          referrerPolicy: "same-origin",
                          headers: {"Content-Type": "application/json"}, body: "{}"})
      .catch(function () {});
    location.replace(this.href);
  });

  // A number for a caseworker to text: first a code is texted to it, then the code proves it.
  var phoneForm = document.getElementById("phone-form");
  var codeForm = document.getElementById("code-form");
  var phoneOut = document.getElementById("phone-status");
  var codeOut = document.getElementById("code-status");
  var asked = "";  // the number the last code went to

  phoneForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var phone = document.getElementById("phone").value;
    if (!document.getElementById("consent").checked) { phoneOut.textContent = t("need_consent"); return; }
    call("POST", "/chat/phone", {phone: phone}).then(function () {
      asked = phone;
      phoneOut.textContent = t("code_sent");
      codeOut.textContent = "";
      codeForm.hidden = false;
      document.getElementById("code").focus();
    }, function (code) {
      phoneOut.textContent = t(code === 400 ? "bad_phone" : code === 429 ? "code_limit" : "failed");
    });
  });

  codeForm.addEventListener("submit", function (e) {
    e.preventDefault();
    var typed = document.getElementById("code").value;
    call("POST", "/chat/phone", {phone: asked, code: typed, consent: true}).then(function () {
      codeForm.hidden = true;
      phoneOut.textContent = t("saved");
    }, function (code) {
      codeOut.textContent = t(code === 400 ? "bad_code" : code === 429 ? "code_limit" : "failed");
    });
  });

  poll();
  setInterval(poll, 10000);
}());
