// Airlock inbox: small progressive enhancements; every page works without this file.
"use strict";

// The waiting list refreshes itself when the inbox says what waits may have changed (server-sent
// events from the runs' event streams); while that stream is not open, it polls every 2 s instead.
function startRefresh() {
  const section = document.getElementById("calls");
  if (!section) return;
  const url = section.dataset.refresh;
  let busy = false, again = false, live = false;
  const refresh = async (by) => {
    if (busy) { again = true; return; }
    busy = true;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.ok) {
        const selected = document.querySelector("tr.call.selected");
        const key = selected ? selected.dataset.workflow + "\u0000" + selected.dataset.call : null;
        section.innerHTML = await response.text();
        if (key) select(rows().findIndex((r) => r.dataset.workflow + "\u0000" + r.dataset.call === key));
        section.dataset.refreshed = String(Date.now());
        section.dataset.refreshedBy = by;
      }
    } catch (err) {
      // A restart of the inbox or a network blip: the next event or tick tries again.
    }
    busy = false;
    if (again) { again = false; refresh(by); }
  };
  if (window.EventSource && section.dataset.events) {
    // EventSource reconnects by itself; the first `calls` after each (re)connect refreshes once.
    const source = new EventSource(section.dataset.events);
    source.addEventListener("open", () => { live = true; section.dataset.live = "sse"; });
    source.addEventListener("calls", () => refresh("sse"));
    source.addEventListener("error", () => { live = false; section.dataset.live = "poll"; });
  }
  const tick = async () => {
    if (!live) await refresh("poll");
    setTimeout(tick, 2000);
  };
  setTimeout(tick, 2000);
}

// Hidden and control characters (but newlines and tabs) in text models and servers chose are shown as escapes.
function shown(text) {
  return String(text).replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g,
    (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

function describeEvent(e) {
  const parts = [e.kind + (e.tool ? " " + e.server + "." + e.tool : "")];
  if (e.kind === "state" && e.state) parts.push(e.state);
  if (e.policy) parts.push(e.policy);
  if (e.decision) parts.push(e.decision + (e.actor ? " by " + e.actor : ""));
  if (e.outcome) parts.push(e.outcome);
  if (e.text) parts.push(e.text.length > 300 ? e.text.slice(0, 300) + "…" : e.text);
  return shown(parts.join(" · "));
}

// A run's page follows the run's events as they happen: its state, and a line per event.
function runEvents() {
  const list = document.getElementById("events");
  if (!list || !window.EventSource) return;
  const source = new EventSource(list.dataset.source);
  source.addEventListener("run", (message) => {
    const event = JSON.parse(message.data);
    if (list.querySelector(`li[data-seq="${event.seq}"]`)) return;
    const state = document.getElementById("state");
    if (event.state && state) state.textContent = event.state;
    const item = document.createElement("li");
    item.className = "event " + event.kind;
    item.dataset.seq = String(event.seq);
    item.textContent = describeEvent(event);
    list.appendChild(item);
    list.dataset.last = String(event.seq);
  });
  source.addEventListener("end", () => { source.close(); list.dataset.ended = "true"; });
}

function rows() { return Array.from(document.querySelectorAll("tr.call")); }

function select(index) {
  const all = rows();
  all.forEach((r) => r.classList.remove("selected"));
  if (index < 0 || index >= all.length) return;
  all[index].classList.add("selected");
  all[index].scrollIntoView({ block: "nearest" });
}

// j/k move through the waiting calls, Enter opens one, / goes to the agent filter.
function keys() {
  document.addEventListener("keydown", (event) => {
    const tag = (event.target.tagName || "").toLowerCase();
    if (tag === "input" || tag === "textarea" || event.ctrlKey || event.metaKey || event.altKey) return;
    const all = rows();
    const at = all.findIndex((r) => r.classList.contains("selected"));
    if (event.key === "j") { select(Math.min(at + 1, all.length - 1)); event.preventDefault(); }
    else if (event.key === "k") { select(Math.max(at - 1, 0)); event.preventDefault(); }
    else if (event.key === "Enter" && at >= 0) { all[at].querySelector("a.open").click(); event.preventDefault(); }
    else if (event.key === "/") {
      const filter = document.getElementById("agent-filter");
      if (filter) { filter.focus(); event.preventDefault(); }
    }
  });
}

// A light check of an edit as it is typed (JSON, an object, required fields and their types);
// the inbox checks it fully against the schema before anything is sent, and so does the run.
function typeOf(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function problems(schema, value) {
  const found = [];
  if (typeOf(value) !== "object") return ["the arguments must be one JSON object"];
  for (const name of schema.required || []) {
    if (!(name in value)) found.push(`${name}: required`);
  }
  const properties = schema.properties || {};
  for (const [name, item] of Object.entries(value)) {
    const spec = properties[name];
    if (!spec) {
      if (schema.additionalProperties === false) found.push(`${name}: not in the schema`);
      continue;
    }
    const want = spec.type ? [].concat(spec.type) : null;
    const got = typeOf(item);
    if (want && !want.includes(got) && !(got === "integer" && want.includes("number"))) {
      found.push(`${name}: expected ${want.join(" or ")}, got ${got}`);
    }
    if (spec.enum && !spec.enum.some((e) => JSON.stringify(e) === JSON.stringify(item))) {
      found.push(`${name}: not one of ${spec.enum.map((e) => JSON.stringify(e)).join(", ")}`);
    }
  }
  return found;
}

function lineDiff(before, after) {
  const a = before.split("\n"), b = after.split("\n");
  const n = a.length, m = b.length;
  const table = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) {
    table[i][j] = a[i] === b[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
  }
  const out = [];
  let i = 0, j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) { out.push(["same", "  " + a[i]]); i++; j++; }
    else if (j < m && (i === n || table[i][j + 1] >= table[i + 1][j])) { out.push(["add", "+ " + b[j]]); j++; }
    else { out.push(["del", "- " + a[i]]); i++; }
  }
  return out;
}

function editor() {
  const area = document.getElementById("edit-arguments");
  if (!area) return;
  const check = document.getElementById("edit-check");
  const diff = document.getElementById("live-diff");
  let schema = {};
  try { schema = JSON.parse(area.dataset.schema || "{}"); } catch (err) { schema = {}; }
  const update = () => {
    let value;
    try { value = JSON.parse(area.value); } catch (err) {
      check.textContent = "Not JSON yet: " + err.message; check.className = "live bad"; diff.hidden = true; return;
    }
    const found = problems(schema, value);
    check.textContent = found.length ? "Does not match the schema: " + found.join("; ") : "Matches the schema.";
    check.className = found.length ? "live bad" : "live good";
    const pretty = JSON.stringify(sortKeys(value), null, 2);
    diff.textContent = "";
    for (const [kind, line] of lineDiff(area.dataset.original, pretty)) {
      const span = document.createElement("span");
      span.className = kind; span.textContent = line; diff.appendChild(span);
    }
    diff.hidden = pretty === area.dataset.original;
  };
  area.addEventListener("input", update);
}

function sortKeys(value) {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys(value[k])]));
  }
  return value;
}

document.addEventListener("DOMContentLoaded", () => { startRefresh(); runEvents(); keys(); editor(); });
