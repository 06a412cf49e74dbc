// Netwarden UI: charts (uPlot, vendored) and live updates (Server-Sent Events).
// An ES module served from this origin: the Content-Security-Policy allows no inline script.
// Everything shown comes from the server already escaped; this file only moves numbers and
// swaps in HTML that the server rendered.

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const charts = [];

function noData(el, text) {
  const p = document.createElement("p");
  p.className = "nodata";
  p.textContent = text;
  el.replaceChildren(p);
}

function fmtTime(sec) {
  return new Date(sec * 1000).toISOString().slice(0, 16).replace("T", " ");
}

function baseOpts(el, series, bands) {
  const width = Math.max(el.clientWidth || 600, 300);
  const axis = { stroke: css("--muted"), grid: { stroke: css("--line"), width: 1 }, ticks: { stroke: css("--line") } };
  return {
    width, height: 240, series, bands,
    axes: [{ ...axis, values: (u, v) => v.map((s) => fmtTime(s).slice(11)) }, { ...axis }],
    legend: { live: true },
    cursor: { drag: { x: true, y: false } },
  };
}

function draw(el, data) {
  const kind = el.dataset.kind;
  let opts, cols;
  if (kind === "score") {
    const s = data.score;
    if (!s.t.length) return noData(el, "No score sample yet: one is taken per sampling period of flow time.");
    cols = [s.t, s.upper, s.lower, s.forecast, s.value, s.anomaly];
    opts = baseOpts(el, [
      { value: (u, v) => v == null ? "" : fmtTime(v) },
      { label: "expected high", stroke: css("--line"), width: 1 },
      { label: "expected low", stroke: css("--line"), width: 1 },
      { label: "forecast", stroke: css("--muted"), dash: [4, 4], width: 1 },
      { label: "score", stroke: css("--accent"), width: 2 },
      { label: "anomaly", stroke: css("--bad"), width: 0, points: { show: true, size: 8, fill: css("--bad") } },
    ], [{ series: [1, 2], fill: "rgba(139,148,158,0.18)" }]);
  } else if (kind === "alerts") {
    const a = data.alerts;
    // Stacked: each series is the sum of the severities up to it, drawn tallest first.
    const order = ["info", "notice", "warning", "error", "critical", "emergency", "none"];
    const names = Object.keys(a.severities).sort((x, y) => order.indexOf(x) - order.indexOf(y));
    if (!a.t.length) return noData(el, "No alerts.");
    const acc = a.t.map(() => 0);
    const stacked = names.map((n) => a.severities[n].map((v, i) => (acc[i] += v)));
    cols = [a.t, ...stacked.reverse()];
    const bars = uPlot.paths && uPlot.paths.bars ? uPlot.paths.bars({ size: [0.8, 40] }) : undefined;
    opts = baseOpts(el, [
      { value: (u, v) => v == null ? "" : fmtTime(v) },
      ...[...names].reverse().map((n) => ({ label: n + " (stacked)", stroke: css("--" + n) || css("--accent"), fill: css("--" + n) || css("--accent"), paths: bars, width: 1 })),
    ]);
  } else {
    if (!data.t.length) return noData(el, "No sample yet: hosts are sampled every few minutes of flow time.");
    cols = [data.t, data.upper, data.lower, ...data.values, data.anomaly];
    const colors = [css("--accent"), css("--warn")];
    opts = baseOpts(el, [
      { value: (u, v) => v == null ? "" : fmtTime(v) },
      { label: "expected high", stroke: css("--line"), width: 1 },
      { label: "expected low", stroke: css("--line"), width: 1 },
      ...data.names.map((n, i) => ({ label: n.replaceAll("_", " "), stroke: colors[i % 2], width: 2 })),
      { label: "anomaly", stroke: css("--bad"), width: 0, points: { show: true, size: 8, fill: css("--bad") } },
    ], [{ series: [1, 2], fill: "rgba(139,148,158,0.18)" }]);
  }
  el.replaceChildren();
  charts.push(new uPlot(opts, cols, el));
}

async function initGraph(el) {
  if (typeof cytoscape === "undefined") await new Promise((r) => addEventListener("load", r, { once: true }));
  if (typeof cytoscape === "undefined") return noData(el, "Graph unavailable.");
  const r = await fetch(el.dataset.src, { credentials: "same-origin" });
  const g = r.ok ? await r.json() : null;
  if (!g || !g.nodes.length) return noData(el, "No edge in the service map (yet).");
  const color = { allowed: css("--ok"), undecided: css("--warn"), denied: css("--bad") };
  const maxBytes = Math.max(1, ...g.edges.map((e) => e.bytes));
  const cy = cytoscape({
    container: el,
    elements: [
      ...g.nodes.map((n) => ({ data: { id: n.id, label: n.label, type: n.type } })),
      ...g.edges.map((e) => ({ data: { id: "e" + e.id, edge: e.id, source: e.source, target: e.target, label: e.label, status: e.status,
        w: 1 + 7 * Math.log1p(e.bytes) / Math.log1p(maxBytes) } })),
    ],
    style: [
      { selector: "node", style: { label: "data(label)", color: css("--text"), "font-size": 10, "background-color": css("--accent"), width: 14, height: 14 } },
      { selector: "node[type = 'workload']", style: { shape: "round-rectangle", width: 22 } },
      { selector: "edge", style: { width: "data(w)", "curve-style": "bezier", "target-arrow-shape": "triangle", "line-color": css("--muted"), "target-arrow-color": css("--muted"), opacity: 0.85 } },
      ...Object.entries(color).map(([k, c]) => ({ selector: `edge[status = '${k}']`, style: { "line-color": c, "target-arrow-color": c } })),
      { selector: "edge:selected", style: { label: "data(label)", color: css("--text"), "font-size": 9 } },
    ],
    layout: { name: "cose", animate: false },
    wheelSensitivity: 0.3,
  });
  cy.on("tap", "edge", (ev) => {
    document.querySelectorAll("tr.picked").forEach((t) => t.classList.remove("picked"));
    const row = document.getElementById("edge-" + ev.target.data("edge"));
    if (row) { row.classList.add("picked"); row.scrollIntoView({ block: "nearest" }); }
  });
  charts.push({ destroy: () => cy.destroy() });
}

async function initCharts(root) {
  charts.splice(0).forEach((c) => c.destroy());
  const graphs = [...root.querySelectorAll(".graph[data-src]")].map((el) => initGraph(el).catch(() => noData(el, "Graph unavailable.")));
  const els = [...root.querySelectorAll(".chart[data-src]")];
  const cache = new Map();
  await Promise.all(els.map(async (el) => {
    try {
      const src = el.dataset.src;
      if (!cache.has(src)) cache.set(src, fetch(src, { credentials: "same-origin" }).then((r) => r.ok ? r.json() : null));
      const data = await cache.get(src);
      if (!data) return noData(el, "Chart data unavailable.");
      if (typeof uPlot === "undefined") return noData(el, "Charts unavailable.");
      draw(el, data);
    } catch (e) {
      noData(el, "Chart data unavailable.");
    }
  }));
  await Promise.all(graphs);
  document.body.dataset.charts = "ready";
}

// Live: numbers update at once; the main part is re-rendered when data changed, at most every
// REFRESH_MS, and never while the user is typing in a form or has a section unfolded.
const REFRESH_MS = 5000;
let lastRecords = null;
let lastRefresh = Date.now();
let pending = false;

function userBusy(main) {
  const a = document.activeElement;
  return (a && main.contains(a) && ["INPUT", "SELECT", "TEXTAREA"].includes(a.tagName)) || main.querySelector("details[open]") !== null;
}

async function refreshMain() {
  const main = document.getElementById("main");
  if (!main || userBusy(main) || document.hidden) return;
  pending = false;
  lastRefresh = Date.now();
  const r = await fetch(location.href, { credentials: "same-origin" });
  if (!r.ok || !(r.headers.get("content-type") || "").startsWith("text/html")) return;
  const doc = new DOMParser().parseFromString(await r.text(), "text/html");
  const fresh = doc.getElementById("main");
  if (!fresh) return;
  main.replaceChildren(...fresh.childNodes);
  initCharts(main);
}

function live() {
  const status = document.getElementById("live");
  if (!status || typeof EventSource === "undefined") return;
  const es = new EventSource("/ui/live");
  es.addEventListener("snapshot", (ev) => {
    const s = JSON.parse(ev.data);
    status.textContent = "live · flow time " + (s.now_ns ? new Date(s.now_ns / 1e6).toISOString().slice(0, 19).replace("T", " ") : "—");
    status.classList.add("on");
    for (const [key, value] of [["score", s.score], ["hosts", s.hosts], ["flows", s.flows]]) {
      document.querySelectorAll(`[data-live="${key}"]`).forEach((el) => { el.textContent = value.toLocaleString("en-US"); });
    }
    if (lastRecords !== null && s.records !== lastRecords) pending = true;
    lastRecords = s.records;
    if (pending && Date.now() - lastRefresh >= REFRESH_MS) refreshMain();
  });
  // Closed before the page goes, so a navigation never waits behind a lingering stream.
  addEventListener("pagehide", () => es.close());
  es.onerror = () => { status.textContent = "live: reconnecting…"; status.classList.remove("on"); };
}

initCharts(document);
live();
