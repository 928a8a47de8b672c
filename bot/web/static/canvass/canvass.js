// The canvasser's form. What is typed is kept on this phone (IndexedDB) as a draft; a finished
// visit waits there until the network is back, then is sent and wiped. Logging out wipes it all.
"use strict";

const DB_NAME = "peaceline-canvass";
const STORE = "visits";
const DRAFT = "draft";
const QUEUED = "visit:";

function openDb() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE, { keyPath: "id" });
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function withStore(mode, work) {
  const db = await openDb();
  return new Promise((resolve, reject) => {
    const tx = db.transaction(STORE, mode);
    const result = work(tx.objectStore(STORE));
    tx.oncomplete = () => { db.close(); resolve(result && "result" in result ? result.result : undefined); };
    tx.onerror = () => { db.close(); reject(tx.error); };
  });
}

const put = (record) => withStore("readwrite", (s) => s.put(record));
const remove = (id) => withStore("readwrite", (s) => s.delete(id));
const all = () => withStore("readonly", (s) => s.getAll());
const wipe = () => withStore("readwrite", (s) => s.clear());

const form = document.getElementById("visit");
const statusLine = document.getElementById("status");
const csrf = document.querySelector("meta[name=csrf-token]").content;
let heardAt = null;
let proven = false;

function say(text, isError) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", Boolean(isError));
}

function fields() {
  const data = new FormData(form);
  return {
    visit: data.get("visit") || "",
    phone: data.get("phone") || "",
    needs: data.getAll("needs"),
    zip: data.get("zip") || "",
    language: data.get("language") || "",
    safe_to_text: data.get("safe_to_text") || "",
    campaign: data.get("campaign") || "",
    note: data.get("note") || "",
    consent: form.elements.consent.checked,
    heard_at: heardAt,
    proven: proven,
  };
}

function fill(saved) {
  for (const [name, value] of Object.entries(saved)) {
    const field = form.elements[name];
    if (!field || name === "needs" || name === "consent") continue;
    if (field instanceof RadioNodeList) {
      for (const radio of field) radio.checked = radio.value === value;
    } else {
      field.value = value;
    }
  }
  for (const box of form.querySelectorAll("input[name=needs]")) box.checked = (saved.needs || []).includes(box.value);
  form.elements.consent.checked = Boolean(saved.consent);
  heardAt = saved.heard_at || null;
  setProven(Boolean(saved.proven));
}

function setProven(value) {
  proven = value;
  document.getElementById("proven").hidden = !value;
}

const saveDraft = () => put({ id: DRAFT, fields: fields() });

async function post(path, body) {
  const resp = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await resp.json().catch(() => ({}));
  return { resp, answer };
}

async function sendCode() {
  const now = fields();
  try {
    const { resp, answer } = await post("/canvass/code.json", { visit: now.visit, phone: now.phone });
    if (!resp.ok) return say(answer.error || "The code was not sent.", true);
    form.elements.visit.value = answer.visit;
    setProven(false);
    await saveDraft();
    say("Code sent. Ask them to read it to you.");
  } catch (err) {
    say("No network: a code needs the network. What you typed is saved on this phone.", true);
  }
}

async function checkCode() {
  const now = fields();
  try {
    const { resp, answer } = await post("/canvass/check.json", { visit: now.visit, phone: now.phone, code: form.elements.code.value });
    if (!resp.ok) return say(answer.error || "That code did not work.", true);
    setProven(true);
    await saveDraft();
    say("Number proven.");
  } catch (err) {
    say("No network: checking the code needs the network. What you typed is saved on this phone.", true);
  }
}

async function queueVisit(event) {
  event.preventDefault();
  const now = fields();
  if (!now.proven) return say("Prove the number first: text a code and type the one they read back.", true);
  if (!now.consent) return say("Tick the box when they say yes to texts.", true);
  if (!now.needs.length) return say("Tick at least one need.", true);
  await put({ id: QUEUED + now.visit, fields: now });
  await remove(DRAFT);
  form.reset();
  heardAt = null;
  setProven(false);
  say("Saved on this phone. Sending…");
  await flush();
}

let flushing = false;

async function flush() {
  if (flushing) return;
  flushing = true;
  try {
    const waiting = (await all()).filter((r) => r.id.startsWith(QUEUED));
    for (const record of waiting) {
      let result;
      try {
        result = await post("/canvass/visits.json", record.fields);
      } catch (err) {
        say(`No network. ${waiting.length} visit(s) saved on this phone; they will be sent when you are back online.`, true);
        return;
      }
      const { resp, answer } = result;
      if (resp.ok) {
        await remove(record.id);
        say(`Sent: ${answer.referrals.length} referral(s) in the inbox.`);
      } else if (resp.status === 401) {
        say("Your login ran out. Log in again to send the visit saved on this phone.", true);
        return;
      } else {  // the server will never take it as it is: back to the form, to fix
        await remove(record.id);
        await put({ id: DRAFT, fields: record.fields });
        fill(record.fields);
        say(answer.error || "The visit was not taken.", true);
      }
    }
  } finally {
    flushing = false;
  }
}

async function logout(event) {
  event.preventDefault();
  await wipe();
  event.target.submit();
}

form.addEventListener("input", saveDraft);
form.addEventListener("change", (event) => {
  if (event.target.name === "consent") heardAt = event.target.checked ? new Date().toISOString() : null;
  saveDraft();
});
form.addEventListener("submit", queueVisit);
document.getElementById("send-code").addEventListener("click", sendCode);
document.getElementById("check-code").addEventListener("click", checkCode);
document.getElementById("logout").addEventListener("submit", logout);
window.addEventListener("online", flush);

(async () => {
  const saved = (await all()).find((r) => r.id === DRAFT);
  if (saved) fill(saved.fields);
  await flush();
})();
