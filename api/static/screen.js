// gridgov command centre screen (/screen?division=<code>): the map drawn by MapLibre GL JS from gridgov's own
// /tiles/style.json and vector tiles (the bearer token added to each request), and the live figures of
// GET /api/screen/figures per community, asked again every `refresh_s` seconds (polling: a wall screen stays on
// for days, and a poll survives server restarts and proxies that cut long-lived connections). Chinese first.
// Communities are coloured by the highest level of the risk zones in force there (the default scheme's colours,
// GET /api/risk-zones/schemes), with the zones by level as a figure and a column.
"use strict";
const LABELS = {
  zh: { title: "网格化服务管理 · 指挥中心", households: "户数", persons: "实有人口", coverage: "排查覆盖",
        open_cases: "待办事件", overdue: "超期", staffed_now: "卡口在岗", unguarded: "未管控出入口",
        community: "社区", screened: "已排查", total: "合计", updated: "更新于", none: "无进行中的排查",
        risk: "风险区域", risk_level: "风险等级", no_zone: "无",
        no_division: "请在地址中指定行政区划，例如 /screen?division=440304096000" },
  en: { title: "Grid management · Command centre", households: "Households", persons: "Residents",
        coverage: "Screening", open_cases: "Open cases", overdue: "Overdue", staffed_now: "Checkpoints staffed",
        unguarded: "Unguarded openings", community: "Community", screened: "Screened", total: "Total",
        risk: "Risk zones", risk_level: "Risk level", no_zone: "none",
        updated: "Updated", none: "no open campaign",
        no_division: "Name a division in the address, e.g. /screen?division=440304096000" },
};
const { t, esc, api, token } = gridgov;
const $ = (id) => document.getElementById(id);
const screen = { map: null, figures: null, timer: null, polls: 0, levels: [] };

// risk levels: the default scheme's level for a severity (the lowest level at least that severe)
function levelOf(severity) {
  if (severity === null || severity === undefined) return null;
  const fitting = screen.levels.filter((l) => l.severity >= severity);
  return fitting.length ? fitting[fitting.length - 1] : screen.levels[0] || null;
}
const levelName = (l) => (l ? (gridgov.state.lang === "zh" ? l.label_zh : l.label_en) : t("no_zone"));
function zoneChips(zones) {  // {severity: count} → coloured counts, highest first
  return Object.entries(zones || {}).sort((a, b) => b[0] - a[0]).map(([sev, count]) => {
    const l = levelOf(Number(sev));
    return `<span class="zone-chip" style="background:${esc(l ? l.colour : "#9e9e9e")}" title="${esc(levelName(l))}">${n(count)}</span>`;
  }).join(" ");
}

function kpi(key, value, { sub = "", bad = false, good = false, id = key } = {}) {
  const en = LABELS.en[key];
  return `<div class="kpi ${bad ? "bad" : good ? "good" : ""}" id="kpi-${id}"><div class="label">${esc(t(key))}` +
         `${gridgov.state.lang === "zh" ? `<small>${esc(en)}</small>` : ""}</div>` +
         `<div class="value">${value}${sub ? ` <small>${sub}</small>` : ""}</div></div>`;
}
const pct = (c) => (c.coverage === null ? "–" : `${Math.round(c.coverage * 1000) / 10}%`);
const n = (v) => Number(v).toLocaleString("zh-CN");

function render(f) {
  const s = f.total, o = s.openings;
  $("division-name").textContent = f.name || f.division;
  $("kpis").innerHTML = [
    kpi("households", n(s.households)), kpi("persons", n(s.persons)),
    kpi("coverage", pct(s), { sub: s.targeted ? `${n(s.screened)} / ${n(s.targeted)}` : esc(t("none")) }),
    kpi("open_cases", n(s.open_cases), { sub: `${esc(t("overdue"))} ${n(s.overdue_cases)}`, bad: s.overdue_cases > 0 }),
    kpi("staffed_now", `${n(s.staffed_now)} / ${n(o.checkpoints)}`, { good: o.checkpoints > 0 && s.staffed_now === o.checkpoints }),
    kpi("unguarded", n(o.unguarded), { bad: o.unguarded > 0, good: o.openings > 0 && o.unguarded === 0 }),
    kpi("risk", n(Object.values(s.risk_zones || {}).reduce((a, b) => a + b, 0)),
        { sub: zoneChips(s.risk_zones), bad: (s.risk_severity || 0) >= 4 }),
  ].join("");
  const row = (c, cls = "") => `<tr class="${cls}" data-code="${esc(c.code || "")}"><td>${esc(c.code ? c.name : t("total"))}</td>` +
    `<td>${n(c.households)}</td><td>${n(c.persons)}</td><td>${pct(c)}</td><td>${n(c.open_cases)}</td>` +
    `<td class="${c.overdue_cases ? "bad" : ""}">${n(c.overdue_cases)}</td>` +
    `<td>${n(c.staffed_now)} / ${n(c.openings.checkpoints)}</td><td class="${c.openings.unguarded ? "bad" : ""}">${n(c.openings.unguarded)}</td>` +
    `<td class="risk-level" data-severity="${esc(c.risk_severity ?? "")}"><i class="level-swatch" style="background:${esc(levelOf(c.risk_severity)?.colour || "transparent")}"></i>` +
    `${esc(levelName(levelOf(c.risk_severity)))} ${zoneChips(c.risk_zones)}</td></tr>`;
  $("communities").innerHTML = `<thead><tr>${["community", "households", "persons", "coverage", "open_cases", "overdue",
    "staffed_now", "unguarded", "risk_level"].map((k) => `<th>${esc(t(k))}</th>`).join("")}</tr></thead>` +
    `<tbody>${f.communities.map((c) => row(c)).join("")}</tbody><tfoot>${row(s, "total")}</tfoot>`;
  $("updated").textContent = `${t("updated")} ${new Date(f.at).toLocaleTimeString("zh-CN", LOCAL)}`;
  colourCommunities(f);
}

// the communities' fill on the map: a match expression from community code to its level's colour
function colourCommunities(f) {
  const map = screen.map;
  if (!map || !map.isStyleLoaded()) return;
  const pairs = f.communities.filter((c) => levelOf(c.risk_severity)).flatMap((c) => [c.code, levelOf(c.risk_severity).colour]);
  const colour = pairs.length ? ["match", ["get", "code"], ...pairs, "rgba(0,0,0,0)"] : "rgba(0,0,0,0)";
  if (!map.getLayer("risk-communities")) {
    map.addLayer({ id: "risk-communities", type: "fill", source: "gridgov", "source-layer": "divisions",
                   filter: ["==", ["get", "level"], "community"], paint: { "fill-color": colour, "fill-opacity": 0.3 } },
                 map.getLayer("grids-fill") ? "grids-fill" : undefined);
  } else {
    map.setPaintProperty("risk-communities", "fill-color", colour);
  }
  document.body.dataset.riskColoured = String(pairs.length / 2);
}

async function refresh(division) {
  clearTimeout(screen.timer);
  try {
    screen.figures = await api(`/api/screen/figures?${new URLSearchParams(division ? { division } : {})}`);
    render(screen.figures);
    $("screen-message").textContent = "";
    screen.polls += 1;
    document.body.dataset.polls = String(screen.polls);
  } catch (error) { $("screen-message").textContent = error.message; }  // keep the last figures on the wall
  screen.timer = setTimeout(() => refresh(division), 1000 * ((screen.figures && screen.figures.refresh_s) || 20));
}

const LOCAL = { timeZone: "Asia/Shanghai", hour12: false };  // the centre's clock, whatever the machine's zone
function tick() { $("clock").textContent = new Date().toLocaleString("zh-CN", LOCAL); }

async function fitToCommunities() {
  const fc = await api("/api/layers/divisions?level=community");
  const codes = new Set(screen.figures.communities.map((c) => c.code));
  let box = null;
  const grow = (x, y) => { box = box ? [Math.min(box[0], x), Math.min(box[1], y), Math.max(box[2], x), Math.max(box[3], y)] : [x, y, x, y]; };
  for (const f of fc.features.filter((f) => codes.has(f.properties.code))) {
    JSON.stringify(f.geometry.coordinates).match(/-?\d+(\.\d+)?,-?\d+(\.\d+)?/g).forEach((p) => grow(...p.split(",").map(Number)));
  }
  if (box) screen.map.fitBounds([[box[0], box[1]], [box[2], box[3]]], { padding: 30, animate: false });
}

function startMap() {
  maplibregl.setWorkerUrl(document.querySelector("script[src*='maplibre-gl-csp.js']").src.replace("maplibre-gl-csp.js", "maplibre-gl-csp-worker.js"));
  screen.map = new maplibregl.Map({
    container: "screen-map", style: "/tiles/style.json", center: [114.07, 22.56], zoom: 13, attributionControl: { compact: true },
    transformRequest: (url) => (new URL(url, location.href).origin === location.origin
      ? { url, headers: { Authorization: "Bearer " + token() } } : { url }),
  });
  screen.map.on("idle", () => { document.body.dataset.mapIdle = String(Date.now()); });
}

async function start(me) {
  tick();
  if (!screen.clock) screen.clock = setInterval(tick, 1000);
  const division = new URLSearchParams(location.search).get("division") || me.scope_code;
  if (!division) { $("screen-message").textContent = t("no_division"); return; }
  const schemes = await api("/api/risk-zones/schemes").catch(() => []);
  screen.levels = (schemes.find((s) => s.default) || schemes[0] || { levels: [] }).levels;
  await refresh(division);
  if (!screen.map) {
    startMap();
    screen.map.once("load", () => { fitToCommunities().catch(console.error); if (screen.figures) colourCommunities(screen.figures); });
  }
}

window.screenPage = screen;
gridgov.setup(LABELS, start);
