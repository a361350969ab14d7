// gridgov map page: log in, then show divisions, grids, buildings, streets, enclosures, their openings and
// checkpoints (the inspector's definition and figures: GET /api/inspection/layers/openings), the open
// cases (a red ring when past their deadline) and the hot spots where one kind of case keeps coming back.
// All data comes from this server's /api/layers in EPSG:4326; no basemap unless one is configured and chosen
// (then its tiles come through this server, and under a GCJ-02 one the layers are drawn shifted: common.js).
"use strict";
const LABELS = {
  zh: { title: "网格化服务管理地图", communities: "社区", grids: "网格", buildings: "楼栋 (放大后显示)", streets: "道路与步道",
        enclosures: "围合区域", checkpoints: "出入口与卡口", households: "户数", residents: "人口", levels: "层数",
        code: "编码", kind: "类型", status: "状态", staff: "值守人数", hours: "开放时间", area: "面积",
        staffed: "卡口 有人值守 / 全部", sealed: "已封闭", unstaffed: "无人值守卡口", open: "未封闭",
        openings: "出入口", unguarded: "放行缺口", street: "道路",
        in_range: "户数在 300–500 之间", out_range: "户数超出范围", estimated: "(估算)",
        cases: "待办事件", hotspots: "事件高发点位", overdue: "超期", category: "类别", state: "状态",
        priority: "优先级", reported: "上报时间", count: "事件数" },
  en: { title: "Community grid map", communities: "Communities", grids: "Grids",
        buildings: "Buildings (zoom in)", streets: "Streets and footpaths", enclosures: "Enclosures",
        checkpoints: "Openings and checkpoints", households: "Households", residents: "Residents", levels: "Levels",
        code: "Code", kind: "Kind", status: "Status", staff: "Staff", hours: "Hours", area: "Area",
        staffed: "Checkpoints staffed / all", sealed: "Sealed", unstaffed: "Unstaffed checkpoints", open: "Open",
        openings: "Openings", unguarded: "Unguarded", street: "Street",
        in_range: "300–500 households", out_range: "households out of range", estimated: "(estimated)",
        cases: "Open cases", hotspots: "Case hot spots", overdue: "Overdue", category: "Category", state: "State",
        priority: "Priority", reported: "Reported", count: "Cases" },
};
const { t, esc, api } = gridgov;

const map = L.map("map", { preferCanvas: true, zoomControl: true, zoomSnap: 0.25 }).setView([22.565, 114.072], 15);
map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
const layers = {
  communities: L.geoJSON(null, { style: { color: "#555", weight: 3, fill: false, dashArray: "6 4" },
                                 onEachFeature: (f, l) => l.bindTooltip(esc(gridgov.state.lang === "zh" ? f.properties.name : f.properties.name_en || f.properties.name)) }),
  grids: L.geoJSON(null, { style: gridStyle, onEachFeature: (f, l) => l.bindPopup(() => gridPopup(f.properties)) }),
  streets: L.geoJSON(null, { style: (f) => ({ color: f.properties.car ? "#8a8a8a" : "#c9a66b", weight: f.properties.car ? 3 : 1.5 }),
                             onEachFeature: (f, l) => f.properties.name && l.bindTooltip(esc(f.properties.name)) }),
  buildings: L.geoJSON(null, { style: (f) => ({ color: "#7a5230", weight: 1, fillColor: f.properties.urban_village ? "#d98c4a" : "#8fa9c9", fillOpacity: 0.7 }),
                               onEachFeature: (f, l) => l.bindPopup(() => buildingPopup(f.properties)) }),
  enclosures: L.geoJSON(null, { style: { color: "#c0392b", weight: 2, fill: false } }),
  checkpoints: L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 6, weight: 2, color: "#fff",
                                   fillColor: gridgov.OPENING_COLOURS[gridgov.openingClass(f.properties)], fillOpacity: 1 }),
                                 onEachFeature: (f, l) => l.bindPopup(() => openingPopup(f.properties)) }),
  hotspots: L.geoJSON(null, { style: { color: "#e65100", weight: 1, fillColor: "#ff9800", fillOpacity: 0.25 },
                              onEachFeature: (f, l) => l.bindTooltip(esc(`${f.properties.category} · ${t("count")} ${f.properties.cases}`)) }),
  cases: L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, caseStyle(f.properties)),
                           onEachFeature: (f, l) => l.bindPopup(() => casePopup(f.properties)) }),
};
const OVERDUE_RING = "#d32f2f", CASE_FILL = "#1976d2";
let control = null;

function gridStyle(f) {
  const h = f.properties.households, ok = h >= 300 && h <= 500;
  return { color: "#1f3b5a", weight: 2, fillColor: f.properties.kind === "dedicated" ? "#9c27b0" : ok ? "#4caf50" : "#ff9800", fillOpacity: 0.15 };
}
function caseStyle(p) {  // overdue: a thick red ring around the dot
  return p.overdue ? { radius: 7, weight: 3, color: OVERDUE_RING, fillColor: CASE_FILL, fillOpacity: 1 }
                   : { radius: 5, weight: 1, color: "#fff", fillColor: CASE_FILL, fillOpacity: 1 };
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

function summarize(grids, checkpoints, cases) {
  const overdue = cases.features.filter((f) => f.properties.overdue).length;
  document.body.dataset.cases = cases.features.length;
  document.body.dataset.overdue = overdue;
  const households = grids.features.reduce((s, f) => s + f.properties.households, 0);
  const s = checkpoints.totals, C = gridgov.OPENING_COLOURS, dot = (c) => `<i style="background:${C[c]}"></i>`;
  document.getElementById("info").innerHTML =
    `<div class="legend">${esc(t("grids"))}: <b id="grid-count">${grids.features.length}</b> · ${esc(t("households"))}: <b>${households.toLocaleString()}</b></div>` +
    `<div class="legend"><i style="background:#4caf50"></i>${esc(t("in_range"))} <i style="background:#ff9800"></i>${esc(t("out_range"))}</div>` +
    (!s ? "" : `<div class="legend">${esc(t("openings"))} <b id="sum-openings">${s.openings}</b>: ${dot("staffed")}${esc(t("staffed"))} ` +
    `<b id="sum-checkpoints">${s.staffed_checkpoints} / ${s.checkpoints}</b> ${dot("unstaffed")}${esc(t("unstaffed"))} ` +
    `<b>${s.checkpoints - s.staffed_checkpoints}</b> ${dot("sealed")}${esc(t("sealed"))} <b id="sum-sealed">${s.sealed}</b> ` +
    `${dot("open")}${esc(t("open"))} <b id="sum-open">${s.open}</b></div>`) +
    `<div class="legend">${esc(t("cases"))}: <i class="case-dot"></i><b id="case-count">${cases.features.length}</b> ` +
    `<i class="case-dot overdue"></i>${esc(t("overdue"))} <b id="overdue-count">${overdue}</b> ` +
    `<i class="hotspot"></i>${esc(t("hotspots"))}</div>`;
  map.attributionControl.addAttribution("© OpenStreetMap contributors (imported data) · synthetic demo data");
}

function buildControl() {
  if (control) control.remove();
  const overlays = {};
  for (const [key, layer] of Object.entries(layers)) { overlays[t(key)] = layer; if (!map.hasLayer(layer)) layer.addTo(map); }
  control = L.control.layers(null, overlays, { collapsed: false }).addTo(map);
}

async function start() {
  buildControl();
  await basemaps.control(map).catch(console.error);
  await loadStatic();
  await loadInView();
}

map.on("moveend", () => { if (document.body.dataset.ready) loadInView().catch(console.error); });
gridgov.setup(LABELS, start);
