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

// APIError is a request the node refused (status is the HTTP status) or
// did not answer (status 0).
class APIError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// apiText returns the body of GET /api/v1 + path as text, so that a caller
// can show it without converting its numbers.
async function apiText(path) {
  let r, text;
  try {
    r = await fetch("/api/v1" + path, { headers: { Accept: "application/json" } });
    text = await r.text();
  } catch {
    throw new APIError(0, "The node does not answer: is its daemon still running? This page tries again by itself.");
  }
  if (!r.ok) {
    let msg = r.status + " " + r.statusText;
    try { msg = JSON.parse(text).error || msg; } catch { /* not JSON: keep the status line */ }
    throw new APIError(r.status, msg);
  }
  return text;
}
const api = async (path) => JSON.parse(await apiText(path));

const short = (s, n = 10) => (s && s.length > n + 4 ? s.slice(0, n) + "…" + s.slice(-4) : s || "");
// when formats a time; one formatter serves every row (making one per
// call costs more than the row).
const dateTime = new Intl.DateTimeFormat([], { dateStyle: "short", timeStyle: "short" });
const fullTime = new Intl.DateTimeFormat([], { dateStyle: "medium", timeStyle: "short" });
const when = (t) => dateTime.format(new Date(t));
const badge = (status) => h("span", { class: "badge " + status, text: status, "data-status": status });
const cidLink = (cid) => h("a", { href: "#/c/" + cid, class: "mono", text: short(cid) });
const problem = (text) => h("p", { class: "problem", text });
const plural = (n, one) => n + " " + one + (n === 1 ? "" : "s");

// recentEvents is how many records of history the live feed replays when
// a commons opens, to fill its panel; the lists hold the older ones.
const recentEvents = 50;
// feedRows and listRows are how many rows the live feed and the list show.
const feedRows = 200, listRows = 300;
// windowRecords is how many of the latest records the list and the chart
// cover: past it, the page would hold the whole history of a large
// commons (?window=N sets another).
const windowRecords = Number(new URLSearchParams(location.search).get("window")) || 50000;

// pageSize is how many contributions one list request asks for (the
// API's most).
const pageSize = 10000;
// batchMillis is how long live events gather before the page shows them,
// all at once; pollMillis how often the page asks for the node's status.
const batchMillis = 100, pollMillis = 5000;

const S = {
  node: null,          // the node's last status
  routed: false,       // the location has been followed once
  listed: "",          // the commons the selector lists, as a key
  commons: "",         // the commons shown
  gen: 0,              // counts the commons opened: an older one's loads stop
  contribs: new Map(), // CID → contribution
  order: [],           // the contributions, in arrival order
  loading: false,      // the contributions are still being listed
  start: 0,            // the feed cursor the contributions are listed after (windowRecords)
  filter: "",
  manifestNames: new Map(),
  es: null, lastId: "", queue: [], flushTimer: 0, renderPending: false, syncTimer: 0, recTimer: 0,
  notices: { node: "", route: "" },
};

async function init() {
  const sel = $("#commons-select");
  sel.onchange = () => { if (sel.value) location.hash = "#/commons/" + sel.value; };
  document.querySelectorAll("#status-filters button").forEach((b) => b.onclick = () => {
    S.filter = b.dataset.status;
    document.querySelectorAll("#status-filters button").forEach((x) => x.classList.toggle("on", x === b));
    renderContribs();
  });
  window.onhashchange = route;
  await poll();
  await route();
  setInterval(poll, pollMillis);
}

// poll asks for the node's status: it says when the node does not answer,
// lists the commons (one may have arrived), opens one when none is open,
// and refreshes the sync panel.
async function poll() {
  let st;
  try { st = await api("/status"); } catch (e) {
    notice("node", e.status ? "The node answered its status with an error: " + e.message : e.message);
    return;
  }
  notice("node", "");
  S.node = st;
  listCommons(st);
  showView();
  if (!st.commons.length) showEmpty(st);
  else if (S.commons) loadSync(st);
  else if (S.routed) await route();
}

// notice shows text of a kind (node, route) above the page, or clears it.
function notice(kind, text) {
  S.notices[kind] = text;
  const all = Object.values(S.notices).filter(Boolean);
  const el = $("#notice");
  el.hidden = !all.length;
  el.replaceChildren(...all.map((t) => h("p", { text: t })));
}

function listCommons(st) {
  const sel = $("#commons-select");
  const opts = st.commons.map((c) => [c.id, (c.name || "(no manifest yet)") + " · " + short(c.id, 8)]);
  const key = JSON.stringify(opts);
  if (key !== S.listed) {
    S.listed = key;
    sel.replaceChildren(...(opts.length ? opts.map(([value, text]) => h("option", { value, text })) : [h("option", { value: "", text: "none yet" })]));
  }
  if (S.commons) sel.value = S.commons;
}

// showView shows the record page, the commons, or what to do when the
// node replicates none.
function showView() {
  const detail = /^#\/c\//.test(location.hash);
  const none = !!S.node && !S.node.commons.length;
  $("#detail").hidden = !detail;
  $("#empty").hidden = detail || !none;
  $("#overview").hidden = detail || none;
}

function showEmpty(st) {
  if (S.commons) closeCommons();
  live("no commons", false);
  $("#empty-node").textContent = "This node is " + st.peer_id + ", " +
    (st.online ? "online with " + plural(st.peers, "peer") + " connected." : "offline.");
}

function live(text, on) {
  const el = $("#live");
  el.textContent = text; el.classList.toggle("on", on);
}

// hashTarget returns what the location names: ["c", CID], ["commons", ID]
// or [].
function hashTarget() {
  const m = location.hash.match(/^#\/(commons|c)\/([^/?#]+)/);
  if (!m) return [];
  try { return [m[1], decodeURIComponent(m[2])]; } catch { return [m[1], m[2]]; }
}

async function route() {
  S.routed = true;
  const [kind, what] = hashTarget();
  notice("route", "");
  showView();
  let commons = kind === "commons" ? what : S.commons || $("#commons-select").value;
  if (kind === "c") {
    const rec = await showRecord(what);
    if (rec && rec.commons) commons = rec.commons;
  }
  if (!S.node || (commons && commons === S.commons)) return;
  const known = () => S.node.commons.some((c) => c.id === commons);
  if (!known()) {
    // The node may have taken it up since the last poll.
    try { S.node = await api("/status"); listCommons(S.node); showView(); } catch { /* poll says why */ }
  }
  if (!S.node.commons.length) { showEmpty(S.node); return; }
  if (!known()) {
    if (commons) notice("route", "This node does not replicate the commons " + commons + ". To replicate it: commons join " + commons);
    commons = S.commons || S.node.commons[0].id;
    if (commons === S.commons) return;
  }
  $("#commons-select").value = commons;
  await openCommons(commons);
}

// closeCommons stops the live feed and forgets the commons shown.
function closeCommons() {
  S.gen++;
  if (S.es) S.es.close();
  clearTimeout(S.flushTimer);
  Object.assign(S, { es: null, lastId: "", queue: [], flushTimer: 0, commons: "", contribs: new Map(), order: [] });
  $("#feed").replaceChildren();
}

async function openCommons(id) {
  closeCommons();
  const gen = S.gen;
  S.commons = id;
  $("#manifest").textContent = "Loading…"; $("#sync").textContent = "Loading…";
  live("connecting…", false);
  // The position to follow from is taken before the lists load, so that
  // nothing added meanwhile is missed (what comes twice is set twice).
  let from = 0, start = 0;
  try {
    const st = await api("/status");
    const c = st.commons.find((x) => x.id === id) || {};
    from = Math.max(0, (c.records || 0) - recentEvents);
    start = Math.max(0, (c.records || 0) - windowRecords);
  } catch { /* the lists say what failed */ }
  if (gen !== S.gen) return;
  S.start = start;
  await Promise.all([loadManifest(), loadContribs(gen, start), loadSync(), loadReciprocity(), loadDisputes()]);
  if (gen === S.gen) follow(from);
}

async function loadManifest() {
  const id = S.commons, el = $("#manifest");
  try {
    const mi = await api("/commons/" + id + "/manifest");
    if (id === S.commons) el.replaceChildren(...manifestPanel(mi));
  } catch (e) {
    if (id !== S.commons) return;
    el.replaceChildren(problem(e.status === 404
      ? "No manifest of this commons has arrived yet. It comes from a peer that holds the commons: if none is on this network, start the daemon with --bootstrap <address of such a peer>."
      : "Cannot read the manifest: " + e.message));
  }
}

function manifestPanel(mi) {
  const m = mi.manifest;
  for (const v of mi.history) S.manifestNames.set(v.cid, "v" + v.version + " · " + m.Licence);
  const keys = (ks) => (ks && ks.length ? h("div", {}, ...ks.map((k) => h("div", { class: "mono", text: k }))) : h("span", { class: "muted", text: "none" }));
  const dl = h("dl", {},
    h("dt", { text: "name" }), h("dd", { text: m.Name }),
    h("dt", { text: "licence" }), h("dd", {}, h("strong", { text: m.Licence, id: "licence" })),
    h("dt", { text: "maintainers" }), h("dd", {}, keys(m.Maintainers)),
    h("dt", { text: "quorum" }), h("dd", { id: "quorum", text: m.Quorum + " to accept · " + m.RejectQuorum + " to reject" }),
    h("dt", { text: "association" }), h("dd", {}, keys(m.Association), h("span", { class: "muted", text: "threshold " + m.Threshold })),
    h("dt", { text: "version" }), h("dd", {}, h("span", { text: "v" + m.Version + " " }), cidLink(mi.head)),
    h("dt", { text: "history" }), h("dd", {}, ...mi.history.map((v) => h("div", {}, h("span", { text: "v" + v.version + " · " + when(v.time) + " " }), cidLink(v.cid), v.head ? h("span", { class: "badge type", text: "head" }) : null))),
  );
  const kids = [];
  if (mi.forks && mi.forks.length) kids.push(h("div", { class: "warn", id: "fork-warning", text: "⚠ The manifest chain is forked: " + mi.forks.length + " concurrent heads. Every node resolves to the same head; the next update that names them all merges the fork." }));
  if (mi.contested && mi.contested.length) kids.push(h("div", { class: "warn", id: "contest-warning" },
    h("strong", { text: "⚠ Contested: " }),
    h("span", { text: mi.contested.length + " manifest versions revoke each other's keys, and nothing in the records says which key was stolen. They count for nothing until one revocation is undisputed; contributions they could decide are held pending. " }),
    ...mi.contested.map((v) => h("div", { class: "mono", text: "v" + v.version + " " + short(v.cid) + " by " + v.author + ", contested with " + (v.contested_with || []).map((x) => short(x)).join(", ") }))));
  if (mi.revoked && mi.revoked.length) kids.push(h("div", { class: "warn", text: "Revoked keys: " + mi.revoked.join(", ") }));
  if (mi.suspended && mi.suspended.length) kids.push(h("div", { class: "warn", text: "Suspended keys (revoked only by contested versions; their reviews count neither way): " + mi.suspended.join(", ") }));
  if (mi.banned && mi.banned.length) kids.push(h("div", { class: "warn", id: "banned-keys", text: "Banned keys (their contributions and reviews count for nothing): " + mi.banned.join(", ") }));
  if (mi.ban_suspended && mi.ban_suspended.length) kids.push(h("div", { class: "warn", text: "Keys banned only by contested versions (their work is held pending): " + mi.ban_suspended.join(", ") }));
  return [...kids, dl];
}

// The record types that move the reciprocity report, besides status
// changes.
const coalitionTypes = new Set(["profile", "sponsorship", "pledge", "acknowledgement"]);

// reciprocitySoon loads the reciprocity report again, once, shortly.
function reciprocitySoon() {
  if (S.recTimer) return;
  S.recTimer = setTimeout(() => { S.recTimer = 0; loadReciprocity(); }, 500);
}

// loadReciprocity shows the commons' reciprocity report, or hides its card
// where the commons carries no coalition records.
async function loadReciprocity() {
  const id = S.commons, card = $("#reciprocity-card"), el = $("#reciprocity");
  let r;
  try { r = await api("/commons/" + id + "/reciprocity"); } catch (e) {
    if (id !== S.commons) return;
    card.hidden = e.status === 400 || e.status === 404; // no coalition records here, or no manifest yet
    if (!card.hidden) el.replaceChildren(problem("Cannot read the reciprocity report: " + e.message));
    return;
  }
  if (id !== S.commons) return;
  card.hidden = false;
  el.replaceChildren(...(r.participants.length ? r.participants.map((p) => participantPanel(p, r.accepted))
    : [h("p", { class: "muted", id: "reciprocity-empty", text: "Nobody has declared a use of this commons (commons profile set --use), countersigned paid work (commons sponsor) or pledged (commons pledge) yet." })]));
}

// bar draws a horizontal bar filled to share (0 to 1).
function bar(share, cls, label) {
  const pct = Math.max(0, Math.min(1, share)) * 100;
  return h("div", { class: "bar-track", role: "img", "aria-label": label, title: label },
    h("div", { class: "bar-fill " + cls, style: "width:" + pct.toFixed(1) + "%" }));
}

function participantPanel(p, accepted) {
  const links = (cids) => cids.map((c) => h("span", {}, cidLink(c), h("span", { text: " " })));
  const uses = (p.uses || []).map((u) => h("li", {}, h("span", { class: "badge type", text: u.Kind }), h("span", { text: " " + u.Name + " " }),
    u.URL ? h("a", { href: u.URL, rel: "noopener noreferrer nofollow", target: "_blank", text: u.URL }) : null));
  const sponsored = p.sponsored.map((s) => h("li", {}, badge(s.status), h("span", { text: " " }), cidLink(s.contribution),
    h("span", { class: "muted", text: " countersigned in " }), cidLink(s.sponsorship)));
  const pledges = p.pledges.map((pl) => {
    const what = pl.kind === "money" ? pl.amount + " " + pl.currency + " (smallest unit)" : pl.kind === "hours" ? pl.amount + " hours" : "infrastructure: node " + short(pl.peer, 14);
    const share = pl.kind === "infrastructure" ? (pl.met ? 1 : 0) : pl.acknowledged / pl.amount;
    const said = pl.unmet ? "marked unmet by the association, upholding a dispute" : pl.kind === "infrastructure" ? (pl.met ? "acknowledged" : "not acknowledged") : pl.acknowledged + " of " + pl.amount + " acknowledged";
    return h("li", { class: "pledge", "data-cid": pl.cid, "data-acknowledged": String(pl.acknowledged), "data-met": String(pl.met) },
      h("div", {}, h("strong", { text: what }), h("span", { class: "muted", text: " · " + pl.from.slice(0, 10) + " to " + pl.until.slice(0, 10) + " · to " + (pl.beneficiary ? short(pl.beneficiary, 14) : "the association") + " · " }), cidLink(pl.cid)),
      bar(share, pl.met ? "met" : "part", said),
      h("div", { class: "muted" }, h("span", { text: said + (pl.acks.length ? " in " : pl.unmet ? " in " : "") }), ...links(pl.unmet ? [pl.unmet] : pl.acks)));
  });
  const shareText = p.accepted + " of " + plural(p.sponsored.length, "sponsored contribution") + " accepted: " +
    (accepted ? Math.round(p.share * 100) : 0) + "% of the " + plural(accepted, "accepted contribution") + " in the commons";
  return h("section", { class: "participant", "data-key": p.key },
    h("h3", {}, h("span", { text: (p.name || "no profile") + " " }), h("span", { class: "mono muted", text: p.key })),
    uses.length ? h("ul", { class: "uses" }, ...uses) : h("p", { class: "muted", text: "No use of the commons declared." }),
    h("h4", { text: "Sponsored work, signed by both sides" }),
    bar(p.share, "share", shareText), h("p", { class: "muted share", "data-share": String(p.share), text: shareText }),
    sponsored.length ? h("ul", { class: "links" }, ...sponsored) : null,
    p.unconfirmed_count ? h("p", { class: "muted unconfirmed" }, h("span", { text: plural(p.unconfirmed_count, "paid contribution") + " name it as sponsor without its countersignature: " }), ...links(p.unconfirmed.slice(0, 10))) : null,
    h("h4", { text: "Pledges" }),
    pledges.length ? h("ul", { class: "links" }, ...pledges) : h("p", { class: "muted", text: "No pledge." }));
}

// The record types that move the disputes card.
const disputeTypes = new Set(["dispute", "statement", "resolution"]);

// disputesSoon loads the disputes card again, once, shortly.
function disputesSoon() {
  if (S.disTimer) return;
  S.disTimer = setTimeout(() => { S.disTimer = 0; loadDisputes(); }, 500);
}

// outcomeBadge shows how a dispute stands.
function outcomeBadge(d) {
  const text = d.outcome + (d.effect ? ": " + d.effect : "") + (d.held ? " (held)" : "");
  return h("span", { class: "badge outcome-" + d.outcome, text, "data-outcome": d.outcome });
}

// loadDisputes shows the commons' disputes, open ones first, or hides the
// card where the commons carries no association records.
async function loadDisputes() {
  const id = S.commons, card = $("#disputes-card"), el = $("#disputes");
  let r, mi;
  try { [r, mi] = await Promise.all([api("/commons/" + id + "/disputes"), api("/commons/" + id + "/manifest")]); } catch (e) {
    if (id !== S.commons) return;
    card.hidden = e.status === 404; // no manifest here yet
    if (!card.hidden) el.replaceChildren(problem("Cannot read the disputes: " + e.message));
    return;
  }
  if (id !== S.commons) return;
  card.hidden = !(mi.association_records > 0) && !r.disputes.length; // a commons whose genesis carries none
  el.replaceChildren(...(r.disputes.length ? [h("ul", { class: "rows" }, ...r.disputes.map((d) => h("li", { class: "dispute", "data-cid": d.cid, "data-outcome": d.outcome },
    outcomeBadge(d), h("span", { text: " " }), h("a", { href: "#/c/" + d.cid, text: short(d.reason, 80) }),
    h("span", { class: "muted", text: " · about " + (d.subject ? (d.subject_type || "record") + " " : "participant ") }),
    d.subject ? cidLink(d.subject) : h("span", { class: "mono muted", text: short(d.participant, 14) }),
    h("span", { class: "when", text: when(d.time) }))))]
    : [h("p", { class: "muted", id: "disputes-empty", text: "No disputes. Anyone can open one about a contribution, a review, a sponsorship, a pledge or a participant (commons dispute open); the association resolves it (commons dispute resolve)." })]),
    ...(r.more ? [h("p", { class: "muted", id: "disputes-more", text: "The first " + r.disputes.length + " disputes by CID only; for the next ones: commons dispute list --commons " + id + " --after " + r.next }) ] : []));
}

// loadContribs lists the contributions that arrived after cursor start
// (the window of the latest records), a page at a time, showing each page
// as it comes.
async function loadContribs(gen, start) {
  S.loading = true;
  renderContribs(); renderChart();
  let after = start;
  try {
    for (;;) {
      const page = await api("/commons/" + S.commons + "/contributions?limit=" + pageSize + "&after=" + after);
      if (gen !== S.gen) return;
      for (const c of page.contributions) addContrib(c);
      if (!page.next || !page.contributions.length) break;
      after = page.next;
      renderContribs(); renderChart();
    }
  } catch (e) {
    if (gen !== S.gen) return;
    $("#contributions-note").replaceChildren(problem("Cannot list the contributions: " + e.message));
    S.loading = false;
    return;
  }
  S.loading = false;
  renderContribs(); renderChart();
}

// addContrib adds a contribution to the lists, or sets its status.
function addContrib(c) {
  const had = S.contribs.get(c.cid);
  if (had) { had.status = c.status; return; }
  const e = { cid: c.cid, title: c.title, kind: c.kind, time: c.time, t: Date.parse(c.time), status: c.status };
  S.contribs.set(c.cid, e);
  S.order.push(e);
}

function renderContribs() {
  const rows = [];
  for (let i = S.order.length - 1; i >= 0 && rows.length < listRows; i--) {
    if (!S.filter || S.order[i].status === S.filter) rows.push(S.order[i]);
  }
  const empty = S.loading ? "Loading contributions…" : S.filter ? "No " + S.filter + " contributions." : "No contributions yet.";
  $("#contributions").replaceChildren(...(rows.length ? rows.map((c) => h("li", { "data-cid": c.cid },
    badge(c.status), h("a", { class: "what", href: "#/c/" + c.cid, text: c.title }), c.kind ? h("span", { class: "badge type", text: c.kind }) : null, h("span", { class: "when", text: when(c.time) })))
    : [h("li", { class: "muted", text: empty })]));
  const n = S.order.length;
  const scope = S.start > 0 ? " among the latest " + windowRecords.toLocaleString("en") + " records (the header counts them all)" : "";
  $("#contributions-note").textContent = S.loading && n ? "Loading… " + plural(n, "contribution") + " so far." :
    n > rows.length ? "The latest " + rows.length + (S.filter ? " " + S.filter : "") + " of " + plural(n, "contribution") + scope + "." :
    scope ? "The contributions" + scope + "." : "";
}

function renderChart() {
  const items = S.order, box = $("#chart");
  if (!items.length) { box.replaceChildren(h("p", { class: "muted", text: S.loading ? "Loading…" : "No contributions yet." })); return; }
  let lo = Infinity, hi = -Infinity;
  for (const c of items) { if (c.t < lo) lo = c.t; if (c.t > hi) hi = c.t; }
  const span = Math.max(hi - lo, 1);
  const unit = span > 4 * 86400e3 ? 86400e3 : span > 4 * 3600e3 ? 3600e3 : 60e3;
  const start = Math.floor(lo / unit) * unit;
  const n = Math.min(Math.floor((hi - start) / unit) + 1, 60);
  const step = Math.ceil((Math.floor((hi - start) / unit) + 1) / n) * unit;
  const buckets = Array.from({ length: n }, () => ({ pending: 0, accepted: 0, rejected: 0 }));
  const totals = { pending: 0, accepted: 0, rejected: 0 };
  for (const c of items) {
    const i = Math.min(Math.floor((c.t - start) / step), n - 1);
    buckets[i][c.status] = (buckets[i][c.status] || 0) + 1;
    totals[c.status] = (totals[c.status] || 0) + 1;
  }
  const max = Math.max(...buckets.map((b) => b.pending + b.accepted + b.rejected), 1);
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
      const t = document.createElementNS(ns, "title"); t.textContent = `${b[s]} ${s} · ${fullTime.format(new Date(start + i * step))}`; r.append(t);
    }
  });
  const fmt = (t) => new Date(t).toLocaleString([], unit >= 86400e3 ? { dateStyle: "short" } : { timeStyle: "short" });
  add("text", { x: pad, y: H + 13 }).textContent = fmt(start);
  const last = add("text", { x: W, y: H + 13, "text-anchor": "end" }); last.textContent = fmt(start + (n - 1) * step);
  const legend = h("div", { class: "legend" }, ...["accepted", "pending", "rejected"].map((s) =>
    h("span", { "data-status": s }, h("i", { style: "background:" + color[s] }), s + " " + totals[s])));
  box.replaceChildren(svg, legend);
}

// loadSync shows the node's status (st, or asked for) on the sync panel.
async function loadSync(st) {
  const id = S.commons;
  try {
    const [s, peers] = await Promise.all([st || api("/status"), api("/peers")]);
    if (id !== S.commons) return;
    const c = s.commons.find((x) => x.id === id) || {};
    $("#sync").replaceChildren(syncPanel(s, c, peers));
  } catch (e) {
    if (id === S.commons) $("#sync").replaceChildren(problem("Cannot read the node's status: " + e.message));
  }
}

function syncPanel(st, c, peers) {
  return h("dl", {},
    h("dt", { text: "this node" }), h("dd", { class: "mono", text: st.peer_id }),
    h("dt", { text: "network" }), h("dd", { text: st.online ? "online · " + plural(st.peers, "peer") + " connected" : "offline" }),
    h("dt", { text: "records" }), h("dd", { id: "records", text: `${c.records ?? 0} (${c.accepted ?? 0} accepted, ${c.pending ?? 0} pending, ${c.rejected ?? 0} rejected${c.withdrawn ? ", " + c.withdrawn + " withdrawn" : ""})` + (c.open_disputes ? ` · ${plural(c.open_disputes, "open dispute")}` : "") }),
    h("dt", { text: "gossip" }), h("dd", { text: plural(c.peers ?? 0, "peer") + " in this commons' topic" }),
    h("dt", { text: "waiting" }), h("dd", { text: `${c.waiting ?? 0} record(s) wait for what they depend on; ${c.inert ?? 0} inert` }),
    ...(c.contested && c.contested.length ? [h("dt", { text: "contested" }), h("dd", { class: "warn", id: "status-contested", text: `${c.contested.length} manifest version(s) contested; ${c.held ?? 0} contribution(s) held pending` })] : []),
    h("dt", { text: "state root" }), h("dd", { class: "mono", text: (c.state_root || "") + (c.state_root_records !== undefined && c.state_root_records !== c.records ? ` (of the first ${c.state_root_records} records: more are arriving)` : "") }),
    h("dt", { text: "peers" }), h("dd", {}, ...(peers.length ? peers.map((p) => h("div", { class: "mono", text: p.id + (p.addresses[0] ? " · " + p.addresses[0] : "") })) : [h("span", { class: "muted", text: "none" })])),
  );
}

// syncSoon refreshes the sync panel within a second, however many events
// arrive meanwhile.
function syncSoon() {
  if (S.syncTimer) return;
  S.syncTimer = setTimeout(() => { S.syncTimer = 0; if (S.commons) loadSync(); }, 1000);
}

// follow opens the live feed after position from; EventSource resumes by
// itself with Last-Event-ID after a drop or an overflow. Events gather for
// batchMillis and are shown together (flush).
function follow(from) {
  const gen = S.gen;
  const es = new EventSource("/api/v1/commons/" + S.commons + "/events?after=" + from);
  S.es = es;
  $("#feed-note").textContent = $("#feed").children.length ? "" : "New records show here as they arrive.";
  es.onopen = () => live("live", true);
  es.onerror = () => {
    if (es.readyState !== EventSource.CLOSED) { live("reconnecting…", false); return; }
    // The node refused the stream, and EventSource gives up: try again
    // later, from the last event shown.
    live("live feed unavailable · retrying", false);
    setTimeout(() => { if (gen === S.gen) follow(S.lastId || from); }, pollMillis);
  };
  es.onmessage = (m) => {
    S.lastId = m.lastEventId;
    S.queue.push(m.data);
    if (!S.flushTimer) S.flushTimer = setTimeout(flush, batchMillis);
  };
}

// flush shows the events gathered since the last flush: the newest of them
// on the live feed, and their effect on the lists and panels, redrawn once.
function flush() {
  S.flushTimer = 0;
  const events = S.queue.map((d) => JSON.parse(d));
  S.queue = [];
  if (!events.length) return;
  const feed = $("#feed"), rows = document.createDocumentFragment();
  // A few new rows are marked fresh (a brief highlight); a burst is not.
  const fresh = events.length <= 20;
  for (const e of events.slice(-feedRows).reverse()) rows.append(feedRow(e, fresh));
  feed.prepend(rows);
  while (feed.children.length > feedRows) feed.lastChild.remove();
  $("#feed-note").textContent = "";
  const [kind, shown] = hashTarget();
  let lists = false, manifest = false, page = false;
  for (const e of events) {
    if (e.type === "contribution") { addContrib(e); lists = true; }
    if (e.type === "status" && S.contribs.has(e.cid)) { S.contribs.get(e.cid).status = e.status; lists = true; }
    if (e.type === "manifest") manifest = true;
    if (kind === "c" && (shown === e.cid || shown === e.target)) page = true;
  }
  if (lists) scheduleRender();
  if (manifest) loadManifest();
  if (events.some((e) => coalitionTypes.has(e.type) || e.type === "status")) reciprocitySoon();
  if (events.some((e) => disputeTypes.has(e.type))) disputesSoon();
  if (kind === "c" && events.some((e) => disputeTypes.has(e.type))) page = true;
  if (page) showRecord(shown);
  syncSoon();
}

function feedRow(e, fresh) {
  let what;
  if (e.type === "status") what = h("span", { class: "what" }, h("a", { href: "#/c/" + e.cid, text: e.title || short(e.cid) }), h("span", { text: ` ${e.from} → ` }), badge(e.status));
  else if (e.type === "review") what = h("span", { class: "what" }, h("span", { text: e.decision + " " }), cidLink(e.target));
  else if (e.type === "contribution") what = h("span", { class: "what" }, h("a", { href: "#/c/" + e.cid, text: e.title }), h("span", { text: " " }), badge(e.status));
  else if (e.type === "sponsorship") what = h("span", { class: "what" }, h("a", { href: "#/c/" + e.cid, text: "sponsors" }), h("span", { text: " " }), cidLink(e.target));
  else if (e.type === "acknowledgement") what = h("span", { class: "what" }, h("a", { href: "#/c/" + e.cid, text: "acknowledges" }), h("span", { text: " " }), cidLink(e.target));
  else what = h("span", { class: "what" }, h("a", { href: "#/c/" + e.cid, text: e.type + ": " + (e.title || short(e.cid)) }));
  return h("li", { "data-id": e.id, "data-cid": e.cid, class: fresh ? "fresh" : "" }, h("span", { class: "badge type", text: e.type }), what, h("span", { class: "when", text: when(e.time) }));
}

// scheduleRender redraws the list and the chart once per frame, however
// many batches arrived in it.
function scheduleRender() {
  if (S.renderPending) return;
  S.renderPending = true;
  requestAnimationFrame(() => { S.renderPending = false; renderContribs(); renderChart(); });
}

// prettyJSON indents JSON text as JSON.stringify(v, null, 2) would, but
// copies every number as written: JSON.parse would round integers above
// 2^53, such as a record's hlc.
function prettyJSON(text) {
  let out = "", depth = 0;
  const nl = () => "\n" + "  ".repeat(depth);
  for (let i = 0; i < text.length;) {
    const ch = text[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      const s = text.slice(i, j + 1);
      try { out += JSON.stringify(JSON.parse(s)); } catch { out += s; }
      i = j + 1;
      continue;
    }
    i++;
    if (" \t\r\n".includes(ch)) continue;
    if (ch === "{" || ch === "[") {
      let j = i;
      while (j < text.length && " \t\r\n".includes(text[j])) j++;
      if (text[j] === (ch === "{" ? "}" : "]")) { out += ch + text[j]; i = j + 1; continue; }
      depth++; out += ch + nl();
    } else if (ch === "}" || ch === "]") { depth--; out += nl() + ch; }
    else if (ch === ",") out += "," + nl();
    else if (ch === ":") out += ": ";
    else out += ch;
  }
  return out;
}

// recordProblem says why the record cid cannot be shown.
function recordProblem(cid, e) {
  const [title, text] =
    e.status === 404 ? ["Record not found", "This node holds no record " + cid + ". It may not have arrived yet, or it may belong to a commons this node does not replicate."]
      : e.status === 400 ? ["Not a record ID", "“" + cid + "” is not a record ID. A record ID is a CID such as bafyreib…, as the live feed and commons show print them."]
        : e.status === 0 ? ["The node does not answer", e.message]
          : ["Cannot show this record", "The node answered: " + e.message];
  return [h("h1", { text: title }), h("p", { id: "record-problem", text })];
}

async function showRecord(cid) {
  const el = $("#contribution");
  const current = () => { const [k, c] = hashTarget(); return k === "c" && c === cid; };
  let text;
  try { text = await apiText("/records/" + encodeURIComponent(cid)); } catch (e) {
    if (current()) el.replaceChildren(...recordProblem(cid, e));
    return null;
  }
  const r = JSON.parse(text);
  if (!current()) return r;
  const json = h("pre", { class: "mono json", id: "record-json", text: prettyJSON(text) });
  const page = r.type === "contribution" ? contributionPage(r) : r.dispute ? await disputePage(r) : r.certificate ? await certificatePage(r) : coalitionPage(r);
  if (!current()) return r;
  if (!page) el.replaceChildren(h("h1", { text: r.type + " " + short(cid) }), json);
  else el.replaceChildren(...page, h("details", {}, h("summary", { text: "The record as JSON" }), json));
  return r;
}

function contributionPage(r) {
  const c = r.contribution;
  const lic = c.Licence && c.Licence["/"];
  const reviews = r.reviews || [];
  return [
    h("h1", {}, h("span", { text: c.Title + " " }), h("span", { id: "detail-status" }, badge(r.status))),
    r.withdrawn_by ? h("p", { class: "warn", id: "withdrawn" }, h("span", { text: r.status === "withdrawn" ? "Withdrawn by the association, upholding a dispute: it can no longer be accepted. The resolution: " : "A resolution that a contest holds could withdraw it: " }), cidLink(r.withdrawn_by)) : null,
    r.held ? h("p", { class: "warn", id: "held", text: "Held: a contest over the association's keys holds this contribution pending (its licence version is contested, or votes the contest leaves undecided could decide it) until the contest is decided." }) : null,
    c.Summary ? h("p", { text: c.Summary }) : null,
    h("dl", {},
      h("dt", { text: "author" }), h("dd", { class: "mono", text: r.author }),
      h("dt", { text: "time" }), h("dd", { text: when(r.time) }),
      h("dt", { text: "kind" }), h("dd", { text: c.Kind || "—" }),
      h("dt", { text: "provenance" }), h("dd", {}, h("span", { text: c.Provenance + (c.Sponsor ? " · sponsor " + c.Sponsor : "") }),
        c.Sponsor ? (r.confirmed_by ? h("span", { id: "sponsor-confirmed" }, h("span", { text: " · confirmed: the sponsor countersigned it in " }), cidLink(r.confirmed_by))
          : h("span", { id: "sponsor-unconfirmed", class: "muted", text: " · not confirmed: the sponsor has not countersigned it" })) : null),
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
  ].filter((x) => x);
}

// evidence lists a dispute's or a statement's evidence URLs.
function evidence(urls) {
  if (!urls || !urls.length) return [];
  return [h("dt", { text: "evidence" }), h("dd", {}, ...urls.map((u) => h("div", {}, h("a", { href: u, rel: "noopener noreferrer nofollow", target: "_blank", text: u }))))];
}

// disputePage shows a dispute with its statements and resolutions.
async function disputePage(r) {
  let d;
  try { d = await api("/disputes/" + encodeURIComponent(r.cid)); } catch (e) { return [h("h1", { text: "dispute " + short(r.cid) }), problem("Cannot read the dispute: " + e.message)]; }
  const about = d.subject ? [h("span", { text: (d.subject_type || "record") + " " }), cidLink(d.subject)] : [h("span", { text: "participant " }), h("span", { class: "mono", text: d.participant })];
  const statements = (d.statements || []).map((s) => h("li", { class: "statement", "data-cid": s.cid },
    h("div", {}, h("span", { class: "mono muted", text: short(s.author, 14) + " · " + when(s.time) + " · " }), cidLink(s.cid), s.inert ? h("span", { class: "warn", text: " inert: " + s.inert }) : null),
    h("p", { text: s.text }), ...(s.evidence || []).map((u) => h("div", {}, h("a", { href: u, rel: "noopener noreferrer nofollow", target: "_blank", text: u })))));
  const resolutions = (d.resolutions || []).map((x) => h("li", { class: "resolution", "data-cid": x.cid, "data-counting": String(x.counting) },
    h("div", {}, h("strong", { text: x.outcome + (x.effect ? " (" + x.effect + ")" : "") }),
      h("span", { class: "muted", text: " · " + (x.counting ? "counts" : x.class + (x.inert ? ": " + x.inert : x.class === "effective" ? ": overruled by a later resolution" : "")) + " · " + when(x.time) + " · " }), cidLink(x.cid)),
    h("p", { text: x.reason }), h("div", { class: "muted mono", text: "signed by " + x.signers.join(", ") })));
  return [
    h("h1", {}, h("span", { class: "badge type", text: "dispute" }), h("span", { text: " " }), h("span", { id: "dispute-outcome" }, outcomeBadge(d))),
    d.inert ? h("p", { class: "warn", text: "Inert: " + d.inert }) : null,
    d.held ? h("p", { class: "warn", text: "Held: a resolution that a contest over the association's keys holds undecided could change this outcome." }) : null,
    h("p", { text: d.reason }),
    h("dl", {}, h("dt", { text: "about" }), h("dd", {}, ...about), h("dt", { text: "opened by" }), h("dd", { class: "mono", text: d.author }),
      h("dt", { text: "time" }), h("dd", { text: when(d.time) }), ...evidence(d.evidence)),
    h("h2", { text: "Statements" }), statements.length ? h("ul", { class: "links" }, ...statements) : h("p", { class: "muted", text: "No statements yet (commons dispute state)." }),
    h("h2", { text: "Resolutions" }), resolutions.length ? h("ul", { class: "links" }, ...resolutions) : h("p", { class: "muted", text: "Not resolved yet: the association resolves it (commons dispute resolve)." }),
    d.more ? h("p", { class: "muted", id: "dispute-more", text: "Only the first 1,000 statements and resolutions by CID are shown, with every resolution that stands or is suspended: this dispute has more." }) : null,
  ].filter((x) => x);
}

// certificatePage shows a certificate, whether it holds now, and why not.
async function certificatePage(r) {
  let c;
  try { c = await api("/certificates/" + encodeURIComponent(r.cid)); } catch (e) { return [h("h1", { text: "certificate " + short(r.cid) }), problem("Cannot check the certificate: " + e.message)]; }
  const what = c.release ? "release " + c.release.name : c.role + " " + short(c.participant, 14);
  return [
    h("h1", {}, h("span", { class: "badge type", text: "certificate" }), h("span", { text: " " + what + " " }),
      h("span", { id: "certificate-holds", class: "badge " + (c.holds ? "accepted" : "rejected"), "data-holds": String(c.holds), text: c.holds ? "holds" : "does not hold" })),
    ...(c.problems || []).map((p) => h("p", { class: "warn", text: p })),
    h("dl", {}, h("dt", { text: "signed by" }), h("dd", { class: "mono", text: c.signers.join(", ") }),
      h("dt", { text: "under" }), h("dd", {}, cidLink(c.under)), h("dt", { text: "expires" }), h("dd", { text: when(c.expires) }),
      c.participant ? h("dt", { text: "participant" }) : null, c.participant ? h("dd", { class: "mono", text: c.participant }) : null,
      c.release ? h("dt", { text: "state root" }) : null, c.release ? h("dd", { class: "mono", text: c.release.root }) : null,
      c.note ? h("dt", { text: "note" }) : null, c.note ? h("dd", { text: c.note }) : null),
    c.release ? h("h2", { text: "Contributions" }) : null,
    c.release ? h("ul", { class: "links" }, ...c.release.contributions.map((x) => h("li", {}, badge(x.status || "waiting"), h("span", { text: " " }), cidLink(x.cid)))) : null,
    h("p", { class: "muted", text: "Anyone can check it offline: commons certificate show " + r.cid + " --bundle cert.car, then commons certificate verify --car cert.car." }),
  ].filter((x) => x);
}

// coalitionPage shows a profile, a sponsorship, a pledge or an
// acknowledgement; null for another type.
function coalitionPage(r) {
  const standing = r.inert ? h("p", { class: "warn", id: "record-inert", text: "Inert, it counts for nothing: " + r.inert }) : null;
  const head = (title) => h("h1", {}, h("span", { class: "badge type", text: r.type }), h("span", { text: " " + title }));
  const by = [h("dt", { text: "signed by" }), h("dd", { class: "mono", text: [r.author, ...(r.cosigners || [])].join(", ") }),
    h("dt", { text: "time" }), h("dd", { text: when(r.time) })];
  const day = (ms) => new Date(ms).toISOString().slice(0, 10);
  if (r.profile) {
    const p = r.profile;
    return [head(p.Name), standing, p.About ? h("p", { text: p.About }) : null,
      h("dl", {}, ...by, h("dt", { text: "uses" }), h("dd", {}, ...((p.Uses || []).length ? p.Uses.map((u) => h("div", {}, h("span", { class: "badge type", text: u.Kind }), h("span", { text: " " + u.Name + " " }),
        u.URL ? h("a", { href: u.URL, rel: "noopener noreferrer nofollow", target: "_blank", text: u.URL }) : null)) : [h("span", { class: "muted", text: "none declared" })])))].filter((x) => x);
  }
  if (r.sponsorship) {
    return [head("of " + short(r.sponsorship.Target["/"])), standing,
      h("dl", {}, ...by, h("dt", { text: "sponsors" }), h("dd", {}, cidLink(r.sponsorship.Target["/"])),
        r.sponsorship.Note ? h("dt", { text: "note" }) : null, r.sponsorship.Note ? h("dd", { text: r.sponsorship.Note }) : null)].filter((x) => x);
  }
  if (r.pledge) {
    const p = r.pledge;
    const what = p.Kind === "money" ? p.Amount + " " + p.Currency + " (smallest unit)" : p.Kind === "hours" ? p.Amount + " hours" : "infrastructure: node " + p.Peer;
    return [head(what), standing,
      h("dl", {}, ...by, h("dt", { text: "period" }), h("dd", { text: day(p.From) + " to " + day(p.Until) }),
        h("dt", { text: "to" }), h("dd", { class: p.Beneficiary ? "mono" : "", text: p.Beneficiary || "the association" }),
        h("dt", { text: "made under" }), h("dd", {}, cidLink(p.Under["/"])),
        p.Note ? h("dt", { text: "note" }) : null, p.Note ? h("dd", { text: p.Note }) : null),
      h("p", { class: "muted", text: "What was acknowledged of it is on the commons page, under who builds on the commons." })].filter((x) => x);
  }
  if (r.statement) {
    return [head("in dispute " + short(r.statement.Dispute["/"])), standing, h("p", { text: r.statement.Text }),
      h("dl", {}, ...by, h("dt", { text: "dispute" }), h("dd", {}, cidLink(r.statement.Dispute["/"])), ...evidence(r.statement.Evidence))].filter((x) => x);
  }
  if (r.resolution) {
    const x = r.resolution;
    return [head(x.Outcome + (x.Effect ? " (" + x.Effect + ")" : "") + " of dispute " + short(x.Dispute["/"])), standing, h("p", { text: x.Reason }),
      h("dl", {}, ...by, h("dt", { text: "dispute" }), h("dd", {}, cidLink(x.Dispute["/"])), h("dt", { text: "under" }), h("dd", {}, cidLink(x.Under["/"])),
        ...((x.Replaces || []).length ? [h("dt", { text: "replaces" }), h("dd", {}, ...x.Replaces.map((l) => h("div", {}, cidLink(l["/"]))))] : []))].filter((x) => x);
  }
  if (r.rotation) {
    return [head("to " + short(r.rotation.Successor, 14)), standing,
      h("dl", {}, ...by, h("dt", { text: "successor" }), h("dd", { class: "mono", text: r.rotation.Successor })),
      h("p", { class: "muted", text: "The successor's reviews, acknowledgements and profile count for the same participant where manifests name the old key, until the association names the successor itself." })].filter((x) => x);
  }
  if (r.acknowledgement) {
    const a = r.acknowledgement;
    return [head("of " + short(a.Pledge["/"])), standing,
      h("dl", {}, ...by, h("dt", { text: "pledge" }), h("dd", {}, cidLink(a.Pledge["/"])),
        h("dt", { text: "met" }), h("dd", { text: a.Amount ? a.Amount + " (in the pledge's unit)" : "whole" }),
        a.Under ? h("dt", { text: "under" }) : null, a.Under ? h("dd", {}, cidLink(a.Under["/"])) : null,
        a.Note ? h("dt", { text: "note" }) : null, a.Note ? h("dd", { text: a.Note }) : null)].filter((x) => x);
  }
  return null;
}

init().catch((e) => notice("node", "The explorer could not start: " + e.message));
