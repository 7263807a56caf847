// Commons explorer: plain JavaScript over the node's read-only HTTP API.
"use strict";

const $ = (s, el = document) => el.querySelector(s);
const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") el.className = v; else if (k === "text") el.textContent = v; else el.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) el.append(k);
  return el;
};
async function api(path) {
  const r = await fetch("/api/v1" + path, { headers: { Accept: "application/json" } });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || r.statusText);
  return body;
}
const short = (s, n = 10) => (s && s.length > n + 4 ? s.slice(0, n) + "…" + s.slice(-4) : s || "");
const when = (t) => new Date(t).toLocaleString([], { dateStyle: "short", timeStyle: "short" });
const badge = (status) => h("span", { class: "badge " + status, text: status, "data-status": status });
const cidLink = (cid) => h("a", { href: "#/c/" + cid, class: "mono", text: short(cid) });

const S = { commons: "", contribs: new Map(), es: null, filter: "", manifestNames: new Map() };

async function init() {
  const st = await api("/status");
  const sel = $("#commons-select");
  sel.replaceChildren(...st.commons.map((c) => h("option", { value: c.id, text: (c.name || "(no manifest yet)") + " · " + short(c.id, 8) })));
  sel.onchange = () => { location.hash = "#/commons/" + sel.value; };
  document.querySelectorAll("#status-filters button").forEach((b) => b.onclick = () => {
    S.filter = b.dataset.status;
    document.querySelectorAll("#status-filters button").forEach((x) => x.classList.toggle("on", x === b));
    renderContribs();
  });
  if (!st.commons.length) { $("#manifest").textContent = "This node replicates no commons yet."; }
  window.onhashchange = route;
  await route();
  setInterval(() => S.commons && loadSync(), 5000);
}

async function route() {
  const m = location.hash.match(/^#\/(commons|c)\/([a-z0-9]+)/);
  const sel = $("#commons-select");
  let commons = m && m[1] === "commons" ? m[2] : (S.commons || sel.value);
  if (m && m[1] === "c") {
    $("#overview").hidden = true; $("#detail").hidden = false;
    const rec = await showContribution(m[2]);
    if (rec && rec.commons) commons = rec.commons;
  } else {
    $("#overview").hidden = false; $("#detail").hidden = true;
  }
  if (commons && commons !== S.commons) { sel.value = commons; await openCommons(commons); }
}

// recentEvents is how many records of history the live feed replays when
// a commons opens; older ones are in the lists, not replayed one by one.
const recentEvents = 50;

async function openCommons(id) {
  S.commons = id; S.contribs.clear();
  $("#feed").replaceChildren();
  // The position to follow from is taken before the lists load, so that
  // nothing added meanwhile is missed (what comes twice is set twice).
  const st = await api("/status");
  const c = st.commons.find((x) => x.id === id) || {};
  const from = Math.max(0, (c.records || 0) - recentEvents);
  await Promise.all([loadManifest(), loadContribs(), loadSync()]);
  follow(from);
}

async function loadManifest() {
  const el = $("#manifest");
  try {
    const mi = await api("/commons/" + S.commons + "/manifest");
    const m = mi.manifest;
    for (const v of mi.history) S.manifestNames.set(v.cid, "v" + v.version + " · " + m.Licence);
    const keys = (ks) => (ks && ks.length ? h("div", {}, ...ks.map((k) => h("div", { class: "mono", text: k }))) : h("span", { class: "muted", text: "none" }));
    const dl = h("dl", {},
      h("dt", { text: "name" }), h("dd", { text: m.Name }),
      h("dt", { text: "licence" }), h("dd", {}, h("strong", { text: m.Licence, id: "licence" })),
      h("dt", { text: "maintainers" }), h("dd", {}, keys(m.Maintainers)),
      h("dt", { text: "quorum" }), h("dd", { id: "quorum", text: m.Quorum + " to accept · " + m.RejectQuorum + " to reject" }),
      h("dt", { text: "association" }), h("dd", {}, keys(m.Association), h("span", { class: "muted", text: "threshold " + m.Threshold })),
      h("dt", { text: "version" }), h("dd", {}, h("span", { text: "v" + m.Version + " " }), h("span", { class: "mono", text: short(mi.head) })),
      h("dt", { text: "history" }), h("dd", {}, ...mi.history.map((v) => h("div", {}, h("span", { text: "v" + v.version + " · " + when(v.time) + " " }), h("span", { class: "mono", text: short(v.cid) }), v.head ? h("span", { class: "badge type", text: "head" }) : null))),
    );
    const kids = [];
    if (mi.forks && mi.forks.length) kids.push(h("div", { class: "warn", id: "fork-warning", text: "⚠ The manifest chain is forked: " + mi.forks.length + " concurrent heads. Every node resolves to the same head; the next update that names them all merges the fork." }));
    if (mi.contested && mi.contested.length) kids.push(h("div", { class: "warn", id: "contest-warning" },
      h("strong", { text: "⚠ Contested: " }),
      h("span", { text: mi.contested.length + " manifest versions revoke each other's keys, and nothing in the records says which key was stolen. They count for nothing until one revocation is undisputed; contributions they could decide are held pending. " }),
      ...mi.contested.map((v) => h("div", { class: "mono", text: "v" + v.version + " " + short(v.cid) + " by " + v.author + ", contested with " + (v.contested_with || []).map((x) => short(x)).join(", ") }))));
    if (mi.revoked && mi.revoked.length) kids.push(h("div", { class: "warn", text: "Revoked keys: " + mi.revoked.join(", ") }));
    if (mi.suspended && mi.suspended.length) kids.push(h("div", { class: "warn", text: "Suspended keys (revoked only by contested versions; their reviews count neither way): " + mi.suspended.join(", ") }));
    el.replaceChildren(...kids, dl);
  } catch (e) { el.textContent = e.message; }
}

async function loadContribs() {
  try {
    const page = await api("/commons/" + S.commons + "/contributions?limit=10000");
    for (const c of page.contributions) S.contribs.set(c.cid, c);
  } catch (e) { $("#contributions").textContent = e.message; }
  renderContribs(); renderChart();
}

function renderContribs() {
  const rows = [...S.contribs.values()].filter((c) => !S.filter || c.status === S.filter).reverse().slice(0, 300);
  $("#contributions").replaceChildren(...(rows.length ? rows.map((c) => h("li", { "data-cid": c.cid },
    badge(c.status), h("a", { class: "what", href: "#/c/" + c.cid, text: c.title }), c.kind ? h("span", { class: "badge type", text: c.kind }) : null, h("span", { class: "when", text: when(c.time) }))) : [h("li", { class: "muted", text: "No contributions." })]));
}

function renderChart() {
  const items = [...S.contribs.values()];
  const box = $("#chart");
  if (!items.length) { box.replaceChildren(h("p", { class: "muted", text: "No contributions yet." })); return; }
  const times = items.map((c) => Date.parse(c.time));
  const lo = Math.min(...times), hi = Math.max(...times);
  const span = Math.max(hi - lo, 1);
  const unit = span > 4 * 86400e3 ? 86400e3 : span > 4 * 3600e3 ? 3600e3 : 60e3;
  const start = Math.floor(lo / unit) * unit;
  const n = Math.min(Math.floor((hi - start) / unit) + 1, 60);
  const step = Math.ceil((Math.floor((hi - start) / unit) + 1) / n) * unit;
  const buckets = Array.from({ length: n }, () => ({ pending: 0, accepted: 0, rejected: 0 }));
  for (const c of items) {
    const i = Math.min(Math.floor((Date.parse(c.time) - start) / step), n - 1);
    buckets[i][c.status] = (buckets[i][c.status] || 0) + 1;
  }
  const max = Math.max(...buckets.map((b) => b.pending + b.accepted + b.rejected));
  const W = 600, H = 160, pad = 22, bw = Math.min((W - pad) / n, 48);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H + 16}`); svg.setAttribute("width", "100%"); svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "contributions over time by status");
  const add = (tag, a) => { const e = document.createElementNS(ns, tag); for (const k in a) e.setAttribute(k, a[k]); svg.append(e); return e; };
  const color = { pending: "var(--pending)", accepted: "var(--accepted)", rejected: "var(--rejected)" };
  add("line", { x1: pad, x2: W, y1: H, y2: H, stroke: "#ccc" });
  add("text", { x: 0, y: 10 }).textContent = max;
  add("text", { x: 0, y: H }).textContent = 0;
  buckets.forEach((b, i) => {
    let y = H;
    for (const s of ["accepted", "pending", "rejected"]) {
      const hgt = (b[s] / max) * (H - 12);
      if (!hgt) continue;
      y -= hgt;
      const r = add("rect", { x: pad + i * bw + 1, y, width: Math.max(bw - 2, 1), height: hgt, fill: color[s], rx: 1.5, class: "bar " + s });
      const t = document.createElementNS(ns, "title"); t.textContent = `${b[s]} ${s} · ${new Date(start + i * step).toLocaleString()}`; r.append(t);
    }
  });
  const fmt = (t) => new Date(t).toLocaleString([], unit >= 86400e3 ? { dateStyle: "short" } : { timeStyle: "short" });
  add("text", { x: pad, y: H + 13 }).textContent = fmt(start);
  const last = add("text", { x: W, y: H + 13, "text-anchor": "end" }); last.textContent = fmt(start + (n - 1) * step);
  const legend = h("div", { class: "legend" }, ...["accepted", "pending", "rejected"].map((s) =>
    h("span", {}, h("i", { style: "background:" + color[s] }), s + " " + items.filter((c) => c.status === s).length)));
  box.replaceChildren(svg, legend);
}

async function loadSync() {
  try {
    const [st, peers] = await Promise.all([api("/status"), api("/peers")]);
    const c = st.commons.find((x) => x.id === S.commons) || {};
    $("#sync").replaceChildren(h("dl", {},
      h("dt", { text: "this node" }), h("dd", { class: "mono", text: st.peer_id }),
      h("dt", { text: "network" }), h("dd", { text: st.online ? `online · ${st.peers} peer${st.peers === 1 ? "" : "s"} connected` : "offline" }),
      h("dt", { text: "records" }), h("dd", { id: "records", text: `${c.records ?? 0} (${c.accepted ?? 0} accepted, ${c.pending ?? 0} pending, ${c.rejected ?? 0} rejected)` }),
      h("dt", { text: "gossip" }), h("dd", { text: `${c.peers ?? 0} peer${c.peers === 1 ? "" : "s"} in this commons' topic` }),
      h("dt", { text: "waiting" }), h("dd", { text: `${c.waiting ?? 0} record(s) wait for what they depend on; ${c.inert ?? 0} inert` }),
      ...(c.contested && c.contested.length ? [h("dt", { text: "contested" }), h("dd", { class: "warn", id: "status-contested", text: `${c.contested.length} manifest version(s) contested; ${c.held ?? 0} contribution(s) held pending` })] : []),
      h("dt", { text: "state root" }), h("dd", { class: "mono", text: (c.state_root || "") + (c.state_root_records !== undefined && c.state_root_records !== c.records ? ` (of the first ${c.state_root_records} records: more are arriving)` : "") }),
      h("dt", { text: "peers" }), h("dd", {}, ...(peers.length ? peers.map((p) => h("div", { class: "mono", text: p.id + (p.addresses[0] ? " · " + p.addresses[0] : "") })) : [h("span", { class: "muted", text: "none" })])),
    ));
  } catch (e) { $("#sync").textContent = e.message; }
}

// follow opens the live feed after cursor from; EventSource resumes by
// itself with Last-Event-ID after a drop or an overflow.
function follow(from) {
  if (S.es) S.es.close();
  const live = $("#live");
  const es = new EventSource("/api/v1/commons/" + S.commons + "/events?after=" + from);
  S.es = es;
  es.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  es.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
  es.onmessage = (m) => onEvent(JSON.parse(m.data));
}

function onEvent(e) {
  const feed = $("#feed");
  let what;
  if (e.type === "status") what = h("span", { class: "what" }, h("a", { href: "#/c/" + e.cid, text: e.title || short(e.cid) }), h("span", { text: ` ${e.from} → ` }), badge(e.status));
  else if (e.type === "review") what = h("span", { class: "what" }, h("span", { text: e.decision + " " }), cidLink(e.target));
  else if (e.type === "contribution") what = h("span", { class: "what" }, h("a", { href: "#/c/" + e.cid, text: e.title }), h("span", { text: " " }), badge(e.status));
  else what = h("span", { class: "what", text: "manifest: " + e.title });
  const li = h("li", { "data-id": e.id, "data-cid": e.cid, class: "fresh" }, h("span", { class: "badge type", text: e.type }), what, h("span", { class: "when", text: when(e.time) }));
  feed.prepend(li);
  while (feed.children.length > 200) feed.lastChild.remove();
  if (e.type === "contribution") S.contribs.set(e.cid, { cursor: e.cursor, cid: e.cid, title: e.title, kind: e.kind, author: e.author, time: e.time, status: e.status });
  if (e.type === "status" && S.contribs.has(e.cid)) S.contribs.get(e.cid).status = e.status;
  if (e.type === "contribution" || e.type === "status") scheduleRender();
  clearTimeout(S.syncTimer); S.syncTimer = setTimeout(loadSync, 300);
  if (e.type === "manifest") loadManifest();
  const m = location.hash.match(/^#\/c\/([a-z0-9]+)/);
  if (m && (m[1] === e.cid || m[1] === e.target)) showContribution(m[1]);
}

// scheduleRender redraws the list and the chart once per frame, however
// many events arrived in it.
function scheduleRender() {
  if (S.renderPending) return;
  S.renderPending = true;
  requestAnimationFrame(() => { S.renderPending = false; renderContribs(); renderChart(); });
}

async function showContribution(cid) {
  const el = $("#contribution");
  let r;
  try { r = await api("/records/" + cid); } catch (e) { el.replaceChildren(h("p", { text: e.message })); return null; }
  if (r.type !== "contribution") { el.replaceChildren(h("h1", { text: r.type + " " + short(cid) }), h("pre", { class: "mono", text: JSON.stringify(r, null, 2) })); return r; }
  const c = r.contribution;
  const lic = c.Licence && c.Licence["/"];
  const reviews = r.reviews || [];
  el.replaceChildren(...[
    h("h1", {}, h("span", { text: c.Title + " " }), h("span", { id: "detail-status" }, badge(r.status))),
    r.held ? h("p", { class: "warn", id: "held", text: "Held: a contest over the association's keys holds this contribution pending (its licence version is contested, or votes the contest leaves undecided could decide it) until the contest is decided." }) : null,
    c.Summary ? h("p", { text: c.Summary }) : null,
    h("dl", {},
      h("dt", { text: "author" }), h("dd", { class: "mono", text: r.author }),
      h("dt", { text: "time" }), h("dd", { text: when(r.time) }),
      h("dt", { text: "kind" }), h("dd", { text: c.Kind || "—" }),
      h("dt", { text: "provenance" }), h("dd", { text: c.Provenance + (c.Sponsor ? " · sponsor " + c.Sponsor : "") }),
      h("dt", { text: "licence assent" }), h("dd", {}, h("span", { text: "contributed under manifest " + (S.manifestNames.get(lic) || "") + " " }), h("span", { class: "mono", text: short(lic) })),
      c.Revises ? h("dt", { text: "revises" }) : null, c.Revises ? h("dd", {}, cidLink(c.Revises["/"])) : null,
      h("dt", { text: "payload" }), h("dd", {}, ...((c.Payload && c.Payload.length) ? c.Payload.map((p) => h("div", {}, h("a", { href: "/api/v1/blobs/" + p.CID["/"], download: p.Name || "", text: p.Name || short(p.CID["/"]) }), h("span", { class: "muted", text: ` ${p.Size} bytes` }))) : [h("span", { class: "muted", text: "none" })])),
      h("dt", { text: "record" }), h("dd", {}, h("a", { class: "mono", href: "/api/v1/records/" + r.cid + "?format=cbor", text: short(r.cid) + " (DAG-CBOR)" })),
    ),
    h("h2", { text: "Reviews" }),
    reviews.length ? h("table", { class: "reviews" }, h("tr", {}, h("th", { text: "signed by" }), h("th", { text: "decision" }), h("th", { text: "counts" }), h("th", { text: "rationale" })),
      ...reviews.map((v) => h("tr", {}, h("td", { class: "mono", text: v.maintainer }), h("td", { text: v.decision }), h("td", { text: v.counts ? "yes" : v.suspended ? "undecided (" + v.suspended + ")" : "no" + (v.inert ? " (" + v.inert + ")" : "") }), h("td", { text: v.rationale || "" }))))
      : h("p", { class: "muted", text: "No reviews yet." }),
    r.inert ? h("p", { class: "warn", text: "Inert: " + r.inert }) : null,
  ].filter((x) => x));
  return r;
}

init().catch((e) => { $("#manifest").textContent = e.message; });
