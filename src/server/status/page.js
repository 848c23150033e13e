// The status page's script: keeps the page current without a reload. The tables come again
// from api/v1/status when events arrive (at most once a second, or ten times as seldom as a
// redraw takes: 10,000 rows take a while) and every 15 s; the log follows api/v1/events/live
// (server-sent events). Every value is set as text, never as HTML:
// names and labels are written by whoever can name a container.
"use strict";
(function () {
  const MAX_LOG = 500;
  const log = document.getElementById("events");
  const live = document.getElementById("live");
  const filter = document.getElementById("filter");
  let several = document.querySelector("#containers th") !== null &&
    document.querySelector("#containers th").textContent === "Engine";
  let refreshing = null;
  let pause = 1000;

  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  function row(cells, cls) {
    const tr = el("tr", undefined, cls);
    for (const c of cells) tr.appendChild(el("td", c === null || c === undefined ? "" : c));
    return tr;
  }

  function fill(section, rows, count) {
    const body = document.querySelector("#" + section + " tbody");
    const fresh = document.createElement("tbody");
    for (const r of rows) fresh.appendChild(r);
    body.replaceWith(fresh);
    document.querySelector("#" + section + " .count").textContent = String(count);
  }

  function stateClass(r) {
    if (r.health === "unhealthy" || r.state === "restarting" || r.state === "dead") return "bad";
    return r.state === "running" ? "ok" : "";
  }

  function lastExit(r) {
    return r.last_exit_code === null ? "" : r.last_exit_code + " (" + r.last_exit_reason + ")";
  }

  function render(s) {
    several = s.several_engines;
    const e = (r) => (several ? [r.engine] : []);
    fill("crashing", s.crashing.map((c) =>
      row(e(c).concat([c.name, c.exits, c.last_exit_code, c.state]), "bad")), s.crashing.length);
    fill("unhealthy", s.unhealthy.map((r) =>
      row(e(r).concat([r.name, r.image, r.state]), "bad")), s.unhealthy.length);
    fill("firing", s.firing.map((f) =>
      row(e(f).concat([f.rule, f.name, f.action, f.since]), "bad")), s.firing.length);
    fill("mutes", s.mutes.map((m) =>
      row([m.matchers, m.state, m.ends_at, m.created_by, m.comment, m.id], "")), s.mutes.length);
    fill("containers", s.containers.map((r) =>
      row(e(r).concat([r.name, r.image, r.project, r.service, r.state, r.health,
        r.restarts, lastExit(r)]), stateClass(r))), s.containers.length);
  }

  function refresh() {
    if (refreshing) return;
    refreshing = setTimeout(function () {
      fetch("api/v1/status", { cache: "no-store" })
        .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
        .then(function (s) {
          const start = performance.now();
          render(s);
          pause = Math.max(1000, 10 * (performance.now() - start));
        })
        .catch(() => {})
        .finally(() => { refreshing = null; });
    }, pause);
  }

  function shown(li) {
    const f = new FormData(filter);
    const text = String(f.get("text") || "").toLowerCase();
    const type = String(f.get("type") || "");
    const action = String(f.get("action") || "").toLowerCase();
    return (!type || li.dataset.type === type) &&
      (!action || li.dataset.action.toLowerCase().startsWith(action)) &&
      (!text || li.dataset.text.toLowerCase().includes(text));
  }

  function applyFilter() {
    for (const li of log.children) li.hidden = !shown(li);
  }

  function add(engine, ev) {
    const attrs = (ev.Actor && ev.Actor.Attributes) || {};
    const name = attrs.name || (ev.Actor && ev.Actor.ID) || "";
    const pairs = Object.keys(attrs).sort().map((k) => k + "=" + attrs[k]).join(", ");
    const when = new Date(Math.floor((ev.timeNano || ev.time * 1e9) / 1e6));
    const li = el("li");
    li.dataset.type = ev.Type || "";
    li.dataset.action = ev.Action || "";
    li.dataset.text = name + " " + pairs;
    const t = el("time", when.toISOString().slice(11, 19));
    t.dateTime = when.toISOString();
    li.appendChild(t);
    li.appendChild(document.createTextNode(" "));
    if (several) {
      li.appendChild(el("span", engine, "engine"));
      li.appendChild(document.createTextNode(" "));
    }
    li.appendChild(el("span", ev.Type, "type"));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("b", ev.Action));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", name, "name"));
    li.appendChild(document.createTextNode(" "));
    li.appendChild(el("span", pairs, "attrs"));
    li.hidden = !shown(li);
    li.className = "new";
    log.insertBefore(li, log.firstChild);
    while (log.children.length > MAX_LOG) log.removeChild(log.lastChild);
  }

  filter.addEventListener("input", applyFilter);
  filter.addEventListener("submit", (e) => e.preventDefault());

  const source = new EventSource("api/v1/events/live");
  source.onopen = function () {
    live.textContent = "live";
    live.className = "on";
  };
  source.onerror = function () {
    live.textContent = "live log: reconnecting";
    live.className = "off";
  };
  source.onmessage = function (m) {
    let data;
    try { data = JSON.parse(m.data); } catch (e) { return; }
    add(data.engine, data.event);
    refresh();
  };
  source.addEventListener("lagged", function (m) {
    const li = el("li", "… " + m.data + " events missed (the page fell behind)", "gap");
    log.insertBefore(li, log.firstChild);
    refresh();
  });
  setInterval(refresh, 15000);
})();
