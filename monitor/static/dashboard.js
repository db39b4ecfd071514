// streamrank dashboard: polls /dashboard/api/series and /dashboard/api/state, draws uPlot
// charts, and drives the rollback API. Plain JavaScript, no build step, nothing remote.
"use strict";

const COLORS = ["#1f77b4", "#d62728", "#7f7f7f", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
const MAX_POINTS = 3600;
const get = (key) => (p) => { const v = p[key]; return v === undefined ? null : v; };
const sub = (key, name) => (p) => (p[key] && p[key][name] !== undefined ? p[key][name] : null);

// one entry per chart: title, and its series (label, how to read it from a point)
const CHARTS = [
  ["Click-through rate of served lists (clicks per list)", [
    ["re-ranked", get("ctr_reranked")], ["upstream order", get("ctr_upstream")]]],
  ["MRR of the chosen item (progressive validation)", [
    ["learner", get("mrr_learner")], ["served", get("mrr_served")],
    ["upstream", get("mrr_upstream")], ["alarm bound", get("bound")]]],
  ["NDCG of the chosen item", [
    ["learner", get("ndcg_learner")], ["served", get("ndcg_served")],
    ["upstream", get("ndcg_upstream")]]],
  ["Log-loss of the choice", [
    ["learner", get("logloss_learner")], ["served", get("logloss_served")],
    ["uniform (upstream)", get("logloss_upstream")], ["ADWIN window mean", get("loss_adwin_mean")]]],
  ["AUC within the list", [
    ["learner", get("auc_learner")], ["served", get("auc_served")],
    ["upstream", get("auc_upstream")]]],
  ["Calibration: top item chosen, predicted vs observed", [
    ["predicted", get("pred_top")], ["observed", get("obs_top")], ["ECE", get("ece")]]],
  ["Drift detections on the loss (cumulative)", [
    ["ADWIN", get("detections_adwin")], ["Page-Hinkley", get("detections_page_hinkley")]]],
  ["Population stability (PSI vs reference)", [
    ["scores", get("psi_score")], ["max over features", get("psi_max")],
    ["item_ctr", sub("psi", "item_ctr")], ["base_score_z", sub("psi", "base_score_z")]]],
  ["Weight norms", [["sparse ||w||", get("weight_norm")], ["dense tables", get("dense_norm")]]],
  ["Update size between snapshots ||Δw|| / ||w||", [["update size", get("update_size")]]],
  ["Model versions", [["learner newest", get("learner_version")],
                      ["served (current)", get("served_version")]]],
  ["Snapshot age and freshness lag (s)", [
    ["learner snapshot age", get("snapshot_age_s")], ["served snapshot age", get("served_age_s")],
    ["freshness lag", get("freshness_lag_s")]]],
  ["Consumer lag (records)", "consumer_lag"],
  ["Events per second", [
    ["impressions", get("rate_impressions")], ["interactions", get("rate_interactions")],
    ["items", get("rate_items")], ["dead letters", get("rate_dead_letters")]]],
];

const points = [];
let lastId = null;
const charts = [];

function seriesOf(spec) {
  if (Array.isArray(spec)) return spec;
  // a map-valued field: one series per key seen so far
  const keys = new Set();
  for (const p of points) for (const k of Object.keys(p[spec] || {})) keys.add(k);
  return [...keys].sort().map((k) => [k.split(".").pop(), sub(spec, k)]);
}

function makeChart(el, title, spec) {
  const series = seriesOf(spec);
  const width = Math.max(el.clientWidth - 12, 300);
  const opts = {
    width, height: 190, legend: { live: false },
    scales: { x: { time: true } },
    series: [{}, ...series.map(([label], i) => ({ label, stroke: COLORS[i % COLORS.length], width: 1.5,
                                                  spanGaps: false }))],
    axes: [{}, { size: 55 }],
  };
  const plot = new uPlot(opts, [[], ...series.map(() => [])], el.querySelector(".plot"));
  return { el, title, spec, series, plot };
}

function render() {
  const xs = points.map((p) => p.ts_ms / 1000);
  for (let i = 0; i < charts.length; i++) {
    let c = charts[i];
    const wanted = seriesOf(c.spec);
    if (wanted.length !== c.series.length) {  // new keys (e.g. topics): rebuild
      c.plot.destroy();
      c = charts[i] = makeChart(c.el, c.title, c.spec);
    }
    const data = [xs, ...c.series.map(([, read]) => points.map((p) => {
      const v = read(p); return typeof v === "number" && isFinite(v) ? v : null; }))];
    c.plot.setData(data);
    const n = data.slice(1).reduce((m, ys) => Math.max(m, ys.filter((v) => v !== null).length), 0);
    c.el.dataset.points = String(n);
  }
}

async function pollSeries() {
  const url = "/dashboard/api/series?count=" + MAX_POINTS + (lastId ? "&after=" + lastId : "");
  const r = await fetch(url);
  if (!r.ok) throw new Error("series: " + r.status);
  const got = (await r.json()).points;
  if (got.length) {
    points.push(...got);
    lastId = got[got.length - 1].id;
    if (points.length > MAX_POINTS) points.splice(0, points.length - MAX_POINTS);
    render();
    const p = points[points.length - 1];
    const h = document.getElementById("health");
    h.textContent = "state: " + (p.state || "–");
    h.className = "pill " + (p.state === "alarm" ? "bad" : p.state === "healthy" ? "good" : "");
    document.getElementById("learner").textContent = "learner: v" + (p.learner_version ?? "–") +
      " · " + p.examples + " lists learned";
  }
  const last = points[points.length - 1];
  document.getElementById("updated").textContent = last ?
    "updated " + new Date(last.ts_ms).toLocaleTimeString() + " · " + points.length + " points" : "no data yet";
}

const fmtTime = (ms) => new Date(ms).toLocaleTimeString();

async function pollState() {
  const r = await fetch("/dashboard/api/state");
  if (!r.ok) throw new Error("state: " + r.status);
  const s = await r.json();
  document.body.dataset.current = String(s.current ?? "");
  document.body.dataset.pinned = String(s.pinned ?? "");
  document.getElementById("served").textContent = "served: v" + (s.current ?? "–");
  const pin = document.getElementById("pin");
  pin.textContent = s.pinned ? "PINNED to v" + s.pinned + " (newest v" + s.newest + ")" :
    "following the newest version";
  pin.className = "pill" + (s.pinned ? " pinned" : "");
  const alarm = document.getElementById("alarm");
  alarm.hidden = !s.alarm;
  if (s.alarm) {
    alarm.textContent = "DRIFT ALARM at " + fmtTime(s.alarm.ts_ms) + ": " + s.alarm.reason +
      (s.alarm.pinned ? " — serving pinned to v" + s.alarm.to + " (last good)" : " — serving not pinned");
  }
  const ul = document.getElementById("versions");
  ul.replaceChildren(...[...s.versions].reverse().map((v) => {
    const li = document.createElement("li");
    li.className = v === s.current ? "current" : "";
    li.dataset.version = String(v);
    const good = s.good[String(v)];
    const label = document.createElement("span");
    label.textContent = "v" + v + (good ? " ★ MRR " + (good.mrr_learner ?? 0).toFixed(3) : "") +
      (v === s.current ? " · serving" : "");
    const b = document.createElement("button");
    b.type = "button"; b.textContent = "Serve v" + v; b.className = "serve"; b.dataset.version = String(v);
    b.disabled = v === s.current;
    b.onclick = () => admin("/admin/rollback", { version: v });
    li.append(label, b);
    return li;
  }));
  document.getElementById("alarms").replaceChildren(...s.alarms.map((a) => {
    const li = document.createElement("li");
    li.textContent = fmtTime(a.ts_ms) + " " + a.state + ": " + a.reason; return li; }));
  document.getElementById("audit").replaceChildren(...s.audit.map((e) => {
    const li = document.createElement("li");
    li.textContent = fmtTime(e.ts_ms) + " " + e.action + " v" + e.from + " → v" + e.to + " by " +
      e.who + (e.reason ? " (" + e.reason + ")" : ""); return li; }));
}

async function admin(path, body) {
  const token = document.getElementById("token").value;
  const reason = document.getElementById("reason").value;
  const out = document.getElementById("action-result");
  out.textContent = "sending " + path + " …"; out.dataset.status = "pending";
  try {
    const r = await fetch(path, { method: "POST", headers: {
        "content-type": "application/json", "authorization": "Bearer " + token },
      body: JSON.stringify({ ...body, reason, who: "dashboard" }) });
    const text = await r.text();
    let got = {};
    try { got = JSON.parse(text); } catch (e) { got = { error: text.slice(0, 200) }; }
    out.textContent = r.ok ? "done: v" + got.from + " → v" + got.to : "refused (" + r.status + "): " + got.error;
    out.dataset.status = String(r.status);
  } catch (e) {  // the server is unreachable: say so rather than nothing
    out.textContent = "failed: " + e + " (is the server running?)"; out.dataset.status = "error";
    return;
  }
  await pollState();
}

function setup() {
  const root = document.getElementById("charts");
  for (const [title, spec] of CHARTS) {
    const el = document.createElement("div");
    el.className = "chart"; el.dataset.points = "0";
    const h = document.createElement("h3"); h.textContent = title;
    const plot = document.createElement("div"); plot.className = "plot";
    el.append(h, plot); root.append(el);
    charts.push(makeChart(el, title, spec));
  }
  document.getElementById("unpin").onclick = () => admin("/admin/unpin", {});
  const tick = async () => {
    try { await pollSeries(); await pollState(); document.body.dataset.error = ""; }
    catch (e) { document.body.dataset.error = String(e); }
    setTimeout(tick, 2000);
  };
  tick();
}

setup();
