// gridgov map page: log in, then show divisions, grids, buildings, streets, enclosures, their openings and
// checkpoints (the inspector's definition and figures: GET /api/inspection/layers/openings), the open
// cases (a red ring when past their deadline) and the hot spots where one kind of case keeps coming back.
// All data comes from this server's /api/layers in EPSG:4326; no basemap unless one is configured and chosen
// (then its tiles come through this server, and under a GCJ-02 one the layers are drawn shifted: common.js).
// Risk zones (五色图) are drawn in their level's colour; a slider replays the last 28 days day by day (the layer as
// in force then: GET /api/layers/risk_zones?as_of=), with a legend of every scheme's levels.
"use strict";
const LABELS = {
  zh: { title: "网格化服务管理地图", communities: "社区", grids: "网格", buildings: "楼栋 (放大后显示)", streets: "道路与步道",
        enclosures: "围合区域", checkpoints: "出入口与卡口", households: "户数", residents: "人口", levels: "层数",
        code: "编码", kind: "类型", status: "状态", staff: "值守人数", hours: "开放时间", area: "面积",
        staffed: "卡口 有人值守 / 全部", sealed: "已封闭", unstaffed: "无人值守卡口", open: "未封闭",
        openings: "出入口", unguarded: "放行缺口", street: "道路",
        in_range: "户数在 300–500 之间", out_range: "户数超出范围", estimated: "(估算)",
        cases: "待办事件", hotspots: "事件高发点位", overdue: "超期", category: "类别", state: "状态",
        priority: "优先级", reported: "上报时间", count: "事件数",
        zones: "风险区域", zone_title: "风险区域（五色图）", zone_now: "当前", zone_days_ago: "{n} 天前",
        zone_play: "回放近 28 天", zone_stop: "停止", zone_day: "日期", zone_count: "区域数", level: "等级",
        valid_from: "起始", valid_to: "截止", until_lifted: "至解除", reason: "原因", sheet: "打印区域清单",
        legend: "图例", dedicated: "专属网格", grid_edge: "网格边界", community_edge: "社区边界", car_street: "车行道路",
        footpath: "步道", building: "楼栋", urban_village: "城中村楼栋", enclosure_edge: "围合区域边界",
        per_households: "户", zone_levels: "风险等级见左下" },
  en: { title: "Community grid map", communities: "Communities", grids: "Grids",
        buildings: "Buildings (zoom in)", streets: "Streets and footpaths", enclosures: "Enclosures",
        checkpoints: "Openings and checkpoints", households: "Households", residents: "Residents", levels: "Levels",
        code: "Code", kind: "Kind", status: "Status", staff: "Staff", hours: "Hours", area: "Area",
        staffed: "Checkpoints staffed / all", sealed: "Sealed", unstaffed: "Unstaffed checkpoints", open: "Open",
        openings: "Openings", unguarded: "Unguarded", street: "Street",
        in_range: "300–500 households", out_range: "households out of range", estimated: "(estimated)",
        cases: "Open cases", hotspots: "Case hot spots", overdue: "Overdue", category: "Category", state: "State",
        priority: "Priority", reported: "Reported", count: "Cases",
        zones: "Risk zones", zone_title: "Risk zones (five colours)", zone_now: "now", zone_days_ago: "{n} days ago",
        zone_play: "Replay the last 28 days", zone_stop: "Stop", zone_day: "Day", zone_count: "Zones", level: "Level",
        valid_from: "From", valid_to: "To", until_lifted: "until lifted", reason: "Reason", sheet: "Print zone sheet",
        legend: "Legend", dedicated: "Dedicated grid", grid_edge: "Grid edge", community_edge: "Community edge",
        car_street: "Street", footpath: "Footpath", building: "Building", urban_village: "Urban-village building",
        enclosure_edge: "Enclosure edge", per_households: " hh", zone_levels: "levels: bottom left" },
};
const { t, esc, api } = gridgov;

const map = L.map("map", { preferCanvas: true, zoomControl: true, zoomSnap: 0.25 }).setView([22.565, 114.072], 15);
map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
const layers = {
  zones: L.geoJSON(null, { style: zoneStyle, onEachFeature: (f, l) => l.bindPopup(() => zonePopup(f.properties)) }),
  communities: L.geoJSON(null, { style: () => ({ color: COMMUNITY_EDGE, weight: 3, fill: false, dashArray: "6 4" }),
                                 onEachFeature: (f, l) => l.bindTooltip(esc(gridgov.state.lang === "zh" ? f.properties.name : f.properties.name_en || f.properties.name)) }),
  grids: L.geoJSON(null, { style: gridStyle, onEachFeature: (f, l) => l.bindPopup(() => gridPopup(f.properties)) }),
  streets: L.geoJSON(null, { style: (f) => ({ color: f.properties.car ? STREET.car : STREET.foot, weight: f.properties.car ? 3 : 1.5 }),
                             onEachFeature: (f, l) => f.properties.name && l.bindTooltip(esc(f.properties.name)) }),
  buildings: L.geoJSON(null, { style: (f) => ({ color: "#7a5230", weight: 1, fillColor: f.properties.urban_village ? BUILDING.urban_village : BUILDING.other, fillOpacity: 0.7 }),
                               onEachFeature: (f, l) => l.bindPopup(() => buildingPopup(f.properties)) }),
  enclosures: L.geoJSON(null, { style: () => ({ color: ENCLOSURE_EDGE, weight: 2, fill: false }) }),
  checkpoints: L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 6, weight: 2, color: "#fff",
                                   fillColor: gridgov.OPENING_COLOURS[gridgov.openingClass(f.properties)], fillOpacity: 1 }),
                                 onEachFeature: (f, l) => l.bindPopup(() => openingPopup(f.properties)) }),
  hotspots: L.geoJSON(null, { style: { color: "#e65100", weight: 1, fillColor: "#ff9800", fillOpacity: 0.25 },
                              onEachFeature: (f, l) => l.bindTooltip(esc(`${f.properties.category} · ${t("count")} ${f.properties.cases}`)) }),
  cases: L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, caseStyle(f.properties)),
                           onEachFeature: (f, l) => l.bindPopup(() => casePopup(f.properties)) }),
};
const OVERDUE_RING = "#d32f2f", CASE_FILL = "#1976d2";
const gridLabels = gridgov.areaLabels(map, layers.grids, gridLabel);
const REPLAY_DAYS = 28, REPLAY_STEP_MS = 700, DAY_MS = 86400e3;
let replay = null;
let control = null;

function gridStyle(f) {
  const h = f.properties.households, ok = h >= 300 && h <= 500;
  return { color: GRID_EDGE, weight: 2, fillColor: gridFill(f.properties), fillOpacity: 0.15 };
}
// One place for each symbol's colours: the layers' styles and the legend (issue 19 item 4) use the same.
const GRID_EDGE = "#1e6fd9", COMMUNITY_EDGE = "#555", ENCLOSURE_EDGE = "#c0392b";
const GRID_FILL = { in_range: "#4caf50", out_range: "#ff9800", dedicated: "#9c27b0" };
const STREET = { car: "#8a8a8a", foot: "#c9a66b" }, BUILDING = { other: "#8fa9c9", urban_village: "#d98c4a" };
function gridFill(p) {
  if (p.kind === "dedicated") return GRID_FILL.dedicated;
  return p.households >= 300 && p.households <= 500 ? GRID_FILL.in_range : GRID_FILL.out_range;
}
// "01 · 493户": the grid's number in its community (the last two digits of its code) and its households.
function gridLabel(p) { return `${String(p.code || "").slice(-2)} · ${p.households}${t("per_households")}`; }
function caseStyle(p) {  // overdue: a thick red ring around the dot
  return p.overdue ? { radius: 7, weight: 3, color: OVERDUE_RING, fillColor: CASE_FILL, fillOpacity: 1 }
                   : { radius: 5, weight: 1, color: "#fff", fillColor: CASE_FILL, fillOpacity: 1 };
}
function zoneStyle(f) {  // the level's colour, more opaque the higher the level
  const p = f.properties;
  return { color: p.colour || "#757575", weight: 2, fillColor: p.colour || "#9e9e9e", fillOpacity: 0.12 + 0.06 * (p.severity || 1) };
}
function zonePopup(p) {
  const level = gridgov.state.lang === "zh" ? p.label_zh : p.label_en;
  return `<b>${esc(p.name)}</b><table>${row("level", level)}${row("valid_from", new Date(p.valid_from).toLocaleString())}` +
         `${row("valid_to", p.valid_to ? new Date(p.valid_to).toLocaleString() : t("until_lifted"))}${row("reason", p.reason)}</table>` +
         `<a href="/risk-zones/${encodeURIComponent(p.id)}/sheet" target="_blank" rel="noopener">${esc(t("sheet"))}</a>`;
}
function row(key, value) { return `<tr><th>${esc(t(key))}</th><td>${esc(value)}</td></tr>`; }
function gridPopup(p) {
  return `<b>${esc(p.name)}</b><table>${row("code", p.code)}${row("households", p.households)}${row("residents", p.residents)}` +
         `${row("buildings", p.buildings)}${row("area", Math.round(p.area_m2).toLocaleString() + " m²")}</table>`;
}
function buildingPopup(p) {
  return `<b>${esc(p.name || p.code || "#" + p.id)}</b><table>${row("code", p.code)}${row("levels", p.levels)}` +
         `${row("households", (p.households ?? "–") + (p.occupancy_estimated ? " " + t("estimated") : ""))}${row("residents", p.residents)}</table>`;
}
function openingPopup(p) {  // an opening of an enclosure's perimeter, with its checkpoint when it has one
  const cp = p.checkpoint;
  return `<b>${esc(cp ? cp.name : p.street_name || `${t("openings")} #${p.id}`)}</b><table>${row("status", gridgov.label(p.status))}` +
         `${row("enclosures", p.enclosure_name)}${row("street", p.street_name || "–")}` +
         (cp ? `${row("staff", cp.staff_count)}${row("hours", cp.opening_hours)}` : "") +
         (p.unguarded ? row("unguarded", gridgov.label(p.unguarded)) : "") + "</table>";
}

function casePopup(p) {
  return `<b>${esc(p.category)}</b><table>${row("state", p.state_label)}${row("priority", p.priority)}` +
         `${row("code", p.grid_code)}${row("reported", new Date(p.reported_at).toLocaleString())}` +
         `${p.overdue ? row("overdue", "⚠") : ""}</table>`;
}

async function loadStatic() {
  const [communities, grids, enclosures, checkpoints, cases, hotspots] = await Promise.all([
    api("/api/layers/divisions?level=community"), api("/api/layers/grids?limit=10000"),
    api("/api/layers/enclosures?limit=10000"),
    api("/api/inspection/layers/openings").catch(() => ({ type: "FeatureCollection", features: [], totals: null })),
    api("/api/layers/cases?open=true&limit=10000"), api("/api/cases/hotspots")]);
  layers.hotspots.clearLayers().addData(hotspots);  // first: the canvas draws in the order features are added
  layers.cases.clearLayers().addData(cases);
  layers.communities.clearLayers().addData(communities);
  layers.grids.clearLayers().addData(grids);
  layers.enclosures.clearLayers().addData(enclosures);
  layers.checkpoints.clearLayers().addData(checkpoints);
  const bounds = layers.grids.getBounds();
  if (bounds.isValid()) map.fitBounds(bounds, { animate: false });
  gridLabels.draw();
  summarize(grids, checkpoints, cases);
}

async function loadInView() {
  const b = map.getBounds(), bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(",");
  const big = map.getZoom() < 15;
  const [streets, buildings] = await Promise.all([
    api(`/api/layers/streets?limit=10000&bbox=${bbox}`),
    big ? Promise.resolve({ type: "FeatureCollection", features: [] }) : api(`/api/layers/buildings?limit=10000&bbox=${bbox}`)]);
  layers.streets.clearLayers().addData(streets);
  layers.buildings.clearLayers().addData(buildings);
  document.body.dataset.buildings = buildings.features.length;
}

// The figures and a legend with one entry per symbol drawn, each marked with its layer (data-layer) so that a
// page test can check that every layer of the switcher has its entries.
function summarize(grids, checkpoints, cases) {
  const overdue = cases.features.filter((f) => f.properties.overdue).length;
  document.body.dataset.cases = cases.features.length;
  document.body.dataset.overdue = overdue;
  const households = grids.features.reduce((s, f) => s + f.properties.households, 0);
  const s = checkpoints.totals, C = gridgov.OPENING_COLOURS, dot = (c) => `<i style="background:${C[c]}"></i>`;
  const fill = (c) => `<i class="fill" style="background:${c}"></i>`;
  const line = (c, w, dash) => `<i class="line" style="border-top:${w}px ${dash ? "dashed" : "solid"} ${c}"></i>`;
  const item = (swatch, key) => `<span class="item">${swatch}${esc(t(key))}</span> `;
  const entry = (layer, html) => `<div class="legend" data-layer="${layer}">${html}</div>`;
  document.getElementById("info").innerHTML =
    `<div class="legend">${esc(t("grids"))}: <b id="grid-count">${grids.features.length}</b> · ${esc(t("households"))}: <b>${households.toLocaleString()}</b></div>` +
    `<details id="legend"${window.innerWidth < 800 ? "" : " open"}><summary>${esc(t("legend"))}</summary>` +
    entry("grids", item(fill(GRID_FILL.in_range), "in_range") + item(fill(GRID_FILL.out_range), "out_range") +
                   item(fill(GRID_FILL.dedicated), "dedicated") + item(line(GRID_EDGE, 2), "grid_edge")) +
    entry("communities", item(line(COMMUNITY_EDGE, 3, true), "community_edge")) +
    entry("streets", item(line(STREET.car, 3), "car_street") + item(line(STREET.foot, 2), "footpath")) +
    entry("buildings", item(fill(BUILDING.other), "building") + item(fill(BUILDING.urban_village), "urban_village")) +
    entry("enclosures", item(line(ENCLOSURE_EDGE, 2), "enclosure_edge")) +
    entry("checkpoints", !s ? `${dot("staffed")}${esc(t("checkpoints"))}` :
      `${esc(t("openings"))} <b id="sum-openings">${s.openings}</b>: ${dot("staffed")}${esc(t("staffed"))} ` +
      `<b id="sum-checkpoints">${s.staffed_checkpoints} / ${s.checkpoints}</b> ${dot("unstaffed")}${esc(t("unstaffed"))} ` +
      `<b>${s.checkpoints - s.staffed_checkpoints}</b> ${dot("sealed")}${esc(t("sealed"))} <b id="sum-sealed">${s.sealed}</b> ` +
      `${dot("open")}${esc(t("open"))} <b id="sum-open">${s.open}</b>`) +
    entry("cases", `${esc(t("cases"))}: <i class="case-dot"></i><b id="case-count">${cases.features.length}</b> ` +
      `<i class="case-dot overdue"></i>${esc(t("overdue"))} <b id="overdue-count">${overdue}</b>`) +
    entry("hotspots", `<i class="hotspot"></i>${esc(t("hotspots"))}`) +
    entry("zones", `<i class="fill zone"></i>${esc(t("zones"))} (${esc(t("zone_levels"))})`) + "</details>";
  map.attributionControl.addAttribution("© OpenStreetMap contributors (imported data) · synthetic demo data");
}

// -- risk zones: legend, slider over the last 28 days, replay ---------------------------------------------------
async function zonePanel() {
  const schemes = await api("/api/risk-zones/schemes").catch(() => []);
  const name = (x) => (gridgov.state.lang === "zh" ? x.label_zh : x.label_en);
  const legend = schemes.map((s) => `<div class="zone-legend" data-scheme="${esc(s.name)}">${esc(name(s))}: ` +
    s.levels.map((l) => `<i style="background:${esc(l.colour)}"></i>${esc(name(l))}`).join(" ") + "</div>").join("");
  document.getElementById("zone-panel").innerHTML =
    `<div><b>${esc(t("zone_title"))}</b> · ${esc(t("zone_count"))} <b id="zone-count">0</b></div>${legend}` +
    `<label>${esc(t("zone_day"))} <input id="zone-day" type="range" min="-${REPLAY_DAYS}" max="0" step="1" value="0"></label>` +
    ` <output id="zone-when" for="zone-day">${esc(t("zone_now"))}</output> ` +
    `<button id="zone-play" type="button">${esc(t("zone_play"))}</button>`;
  document.getElementById("zone-day").addEventListener("input", (e) => loadZones(Number(e.target.value)).catch(console.error));
  document.getElementById("zone-play").addEventListener("click", () => (replay ? stopReplay() : startReplay()));
}

async function loadZones(day) {  // day: 0 now, -n n days ago (the layer as in force then)
  const asOf = day < 0 ? `&as_of=${encodeURIComponent(new Date(Date.now() + day * DAY_MS).toISOString())}` : "";
  const fc = await api(`/api/layers/risk_zones?limit=10000${asOf}`);
  fc.features.sort((a, b) => a.properties.severity - b.properties.severity);  // the highest drawn last, on top
  layers.zones.clearLayers().addData(fc);
  const when = document.getElementById("zone-when"), slider = document.getElementById("zone-day");
  if (slider && Number(slider.value) !== day) slider.value = String(day);
  if (when) when.textContent = day === 0 ? t("zone_now") : `${t("zone_days_ago").replace("{n}", -day)} · ` +
    new Date(Date.now() + day * DAY_MS).toLocaleDateString(gridgov.state.lang === "zh" ? "zh-CN" : "en-GB");
  document.getElementById("zone-count").textContent = fc.features.length;
  document.body.dataset.zones = fc.features.length;
  document.body.dataset.zoneDay = day;
  document.body.dataset.zoneLevels = fc.features.map((f) => f.properties.level).join(",");
}

function startReplay() {  // from 28 days ago to today, one day per step, then stop on today
  let day = -REPLAY_DAYS;
  document.getElementById("zone-play").textContent = t("zone_stop");
  const step = async () => {
    await loadZones(day).catch(console.error);
    if (day >= 0) { stopReplay(); return; }
    day += 1;
    replay = setTimeout(step, REPLAY_STEP_MS);
  };
  replay = setTimeout(step, 0);
}
function stopReplay() {
  clearTimeout(replay);
  replay = null;
  const button = document.getElementById("zone-play");
  if (button) button.textContent = t("zone_play");
  document.body.dataset.replayed = "1";
}

function buildControl() {
  if (control) control.remove();
  const overlays = {};
  for (const [key, layer] of Object.entries(layers)) { overlays[t(key)] = layer; if (!map.hasLayer(layer)) layer.addTo(map); }
  control = L.control.layers(null, overlays, { collapsed: window.innerWidth < 800 }).addTo(map);  // phones: a button
}

async function start() {
  buildControl();
  await basemaps.control(map).catch(console.error);
  stopReplay();
  delete document.body.dataset.replayed;
  await zonePanel();
  await loadStatic();
  await loadZones(0);
  await loadInView();
}

map.on("moveend", () => { if (document.body.dataset.ready) loadInView().catch(console.error); });
gridgov.setup(LABELS, start);
