// gridgov planner page: redraw, split and merge grids of a community with a live validation report.
// Every change is previewed on the server (PUT/POST ... preview: true) and saved with a reason and If-Match.
"use strict";
const LABELS = {
  zh: { title: "网格规划", community: "社区", grid: "网格", edit: "编辑边界", split: "画线拆分", new_name: "新网格名称",
        merge_with: "合并网格", merge: "预览合并", move_shared: "相邻网格同步调整边界", reason: "修改原因", save: "保存",
        cancel: "取消", history: "历史版本", revert: "回退到此版本", households: "户数", residents: "人口", workers: "网格员",
        per_worker: "户/人", version: "版本", gaps: "未覆盖区域", overlaps: "重叠", outside: "超出社区", cut: "被切割楼栋",
        moved: "变更网格的楼栋", ok_report: "无重叠、无越界、无切割楼栋", saved: "已保存", need_reason: "请填写修改原因",
        stale: "该网格已被他人修改，请刷新后重新编辑", conflict: "未保存：", none: "无", choose: "—",
        handed_over: "网格员随地块调整" },
  en: { title: "Grid planning", community: "Community", grid: "Grid", edit: "Edit boundary", split: "Draw split line",
        new_name: "New grid name", merge_with: "Merge with", merge: "Preview merge", move_shared: "Move shared boundaries of neighbours",
        reason: "Reason for the change", save: "Save", cancel: "Cancel", history: "History", revert: "Revert to this version",
        households: "Households", residents: "Residents", workers: "Workers", per_worker: "per worker", version: "Version",
        gaps: "Uncovered land", overlaps: "Overlaps", outside: "Outside the community", cut: "Buildings cut",
        moved: "Buildings changing grid", ok_report: "No overlap, nothing outside, no building cut", saved: "Saved",
        need_reason: "Please give a reason", stale: "Someone else changed this grid: reload and edit again",
        conflict: "Not saved: ", none: "none", choose: "—", handed_over: "Grid workers moved with their land" },
};
const { t, esc, api, request } = gridgov;
const $ = (id) => document.getElementById(id);
const map = L.map("map", { preferCanvas: false, zoomSnap: 0.25 }).setView([22.565, 114.072], 16);
map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
const gridsLayer = L.geoJSON(null, { style: gridStyle, onEachFeature: (f, l) => l.on("click", () => selectGrid(f.properties.code)) }).addTo(map);
const buildingsLayer = L.geoJSON(null, { style: { color: "#7a5230", weight: 1, fillColor: "#8fa9c9", fillOpacity: 0.6 }, pmIgnore: true, interactive: false }).addTo(map);
const reportLayer = L.geoJSON(null, { style: reportStyle, pmIgnore: true, interactive: false }).addTo(map);
const state = { community: null, grid: null, etag: null, grids: [], pending: null };

function gridStyle(f) {
  const h = f.properties.households, ok = h >= 300 && h <= 500, selected = f.properties.code === state.grid;
  return { color: selected ? "#d81b60" : "#1f3b5a", weight: selected ? 3 : 1.5,
           fillColor: f.properties.kind === "dedicated" ? "#9c27b0" : ok ? "#4caf50" : "#ff9800", fillOpacity: 0.2 };
}
function reportStyle(f) {
  return { gap: { color: "#d32f2f", fillColor: "#d32f2f", fillOpacity: 0.5, weight: 1 },
           overlap: { color: "#ef6c00", fillColor: "#ff9800", fillOpacity: 0.6, weight: 1 },
           outside: { color: "#6a1b9a", fillColor: "#ab47bc", fillOpacity: 0.5, weight: 1 },
           proposed: { color: "#d81b60", weight: 2, dashArray: "6 4", fill: false } }[f.properties.what];
}
function message(text, kind = "") { $("message").textContent = text; $("message").className = kind; }

async function loadCommunities() {
  const fc = await api("/api/layers/divisions?level=community");
  $("community").innerHTML = fc.features.map((f) =>
    `<option value="${esc(f.properties.code)}">${esc(gridgov.state.lang === "zh" ? f.properties.name : f.properties.name_en || f.properties.name)}</option>`).join("");
  if (state.community) $("community").value = state.community;
  await loadCommunity($("community").value);
}

async function loadCommunity(code) {
  state.community = code;
  const grids = await api(`/api/layers/grids?community_code=${code}&limit=1000`);
  state.grids = grids.features;
  gridsLayer.clearLayers().addData(grids);
  const options = `<option value="">${esc(t("choose"))}</option>` + grids.features.map((f) =>
    `<option value="${esc(f.properties.code)}">${esc(f.properties.code.slice(-2))} · ${esc(f.properties.name)} (${f.properties.households})</option>`).join("");
  $("grid").innerHTML = options;
  $("merge-with").innerHTML = options;
  const bounds = gridsLayer.getBounds();
  if (bounds.isValid()) {
    map.fitBounds(bounds, { animate: false });
    const b = bounds.pad(0.05), bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(",");
    buildingsLayer.clearLayers().addData(await api(`/api/layers/buildings?limit=10000&bbox=${bbox}`));
  }
  if (state.grid && state.grids.some((f) => f.properties.code === state.grid)) await selectGrid(state.grid);
}

async function selectGrid(code) {
  cancel();
  state.grid = code || null;
  $("grid").value = code || "";
  gridsLayer.setStyle(gridStyle);
  if (!code) { $("grid-info").textContent = ""; $("history").innerHTML = ""; return; }
  const { data, headers } = await request("GET", `/api/grids/${code}`);
  state.etag = headers.get("ETag");
  const p = state.grids.find((f) => f.properties.code === code)?.properties || {};
  $("grid-info").innerHTML = `<b>${esc(data.properties.name)}</b> ${esc(code)}<br>${esc(t("version"))} ${data.properties.version}` +
    ` · ${esc(t("households"))} ${p.households ?? "–"} · ${esc(t("residents"))} ${p.residents ?? "–"}`;
  await loadHistory(code);
}

async function loadHistory(code) {
  const versions = await api(`/api/grids/${code}/versions`);
  $("history").innerHTML = versions.slice().reverse().map((v) =>
    `<li>v${v.version} · ${esc(v.author)} · ${esc(new Date(v.valid_from).toLocaleString())}<br><i>${esc(v.reason)}</i>` +
    (v.valid_to ? `<button type="button" data-version="${v.version}">${esc(t("revert"))}</button>` : "") + `</li>`).join("");
}

function layerOf(code) { return gridsLayer.getLayers().find((l) => l.feature.properties.code === code); }

// -- pending operations: each knows how to send itself as a preview or for real ----------------------------
function setPending(kind, send) {
  state.pending = { kind, send };
  return runPreview();
}
async function runPreview() {
  try {
    const { data } = await state.pending.send(true);
    showReport(data);
    $("save").disabled = false;
    document.body.dataset.preview = String(Number(document.body.dataset.preview || 0) + 1);
  } catch (error) { showError(error); }
}
function boundaryEdit(geometry) {
  const code = state.grid;
  return setPending("redraw", (preview) => request("PUT", `/api/grids/${code}/boundary`,
    { geometry, preview, reason: $("reason").value, move_shared_boundary: $("move-shared").checked }, { "If-Match": state.etag }));
}
function splitEdit(line) {
  const code = state.grid;
  return setPending("split", (preview) => request("POST", `/api/grids/${code}/split`,
    { line, preview, reason: $("reason").value, new_name: $("new-name").value || code.slice(-2) + "-2" }, { "If-Match": state.etag }));
}
async function mergeEdit() {
  const other = $("merge-with").value, code = state.grid;
  if (!other || !code || other === code) return;
  const tag = (await request("GET", `/api/grids/${other}`)).headers.get("ETag");
  return setPending("merge", (preview) => request("POST", "/api/grids/merge",
    { codes: [code, other], preview, reason: $("reason").value }, { "If-Match": `${state.etag}, ${tag}` }));
}

function showReport(result) {
  const r = result.report;
  reportLayer.clearLayers();
  const add = (geometry, what) => reportLayer.addData({ type: "Feature", geometry, properties: { what } });
  r.gaps.pieces.forEach((p) => add(p.geometry, "gap"));
  r.overlaps.forEach((p) => add(p.geometry, "overlap"));
  r.outside.forEach((p) => add(p.geometry, "outside"));
  result.grids.features.filter((f) => !f.properties.retired).forEach((f) => add(f.geometry, "proposed"));
  const rows = r.workload.map((w) => `<tr class="${w.in_range ? "" : "warn"}"><td>${esc(w.grid.slice(-2))}</td><td>${w.households}</td>` +
    `<td>${w.workers}</td><td>${w.households_per_worker ? Math.round(w.households_per_worker) : "–"}</td></tr>`).join("");
  $("report").innerHTML =
    `<p class="${r.ok ? "" : "bad"}" id="report-status">${esc(r.ok ? t("ok_report") : r.problems.join("; "))}</p>` +
    `<p>${esc(t("gaps"))}: ${r.gaps.area_m2} m² · ${esc(t("overlaps"))}: ${r.overlaps.length} · ${esc(t("cut"))}: ${r.cut_buildings.length}</p>` +
    `<p>${esc(t("moved"))}: <span id="moved-count">${r.moved_buildings.length}</span> ${r.moved_buildings.slice(0, 8).map((m) => esc((m.old_code || "#" + m.id) + " → " + (m.new_code || "–"))).join(", ")}</p>` +
    `<table><tr><th>${esc(t("grid"))}</th><th>${esc(t("households"))}</th><th>${esc(t("workers"))}</th><th>${esc(t("per_worker"))}</th></tr>${rows}</table>`;
}

function showError(error) {
  if (error.status === 412) message(t("stale"), "error");
  else if (error.status === 409 && error.body.report) { showReport({ report: error.body.report, grids: { features: [] } }); message(t("conflict") + error.message, "error"); }
  else message(error.message, "error");
}

async function save() {
  if (!state.pending) return;
  if (!$("reason").value.trim()) { message(t("need_reason"), "error"); return; }
  try {
    const { data } = await state.pending.send(false);
    const version = data.grids.features[0]?.properties.version;
    state.pending = null;
    $("save").disabled = true;
    await loadCommunity(state.community);
    const moved = (data.assignments || []).map((a) => `${a.username} ${a.from_grid.slice(-2)} → ${a.to_grid.slice(-2)}`);
    message(`${t("saved")} (${t("version")} ${version})` + (moved.length ? ` · ${t("handed_over")}: ${moved.join(", ")}` : ""), "ok");
  } catch (error) { showError(error); }
}

function cancel() {
  state.pending = null;
  $("save").disabled = true;
  reportLayer.clearLayers();
  $("report").innerHTML = "";
  map.pm.disableGlobalEditMode?.();
  gridsLayer.eachLayer((l) => l.pm?.disable());
  map.pm.disableDraw();
  message("");
}

function startEditing() {
  const layer = layerOf(state.grid);
  if (!layer) return;
  layer.pm.enable({ snappable: true, snapDistance: 15, allowSelfIntersection: false });
  layer.on("pm:edit", () => boundaryEdit(layer.toGeoJSON().geometry));
}

map.on("pm:create", (event) => {
  if (event.shape !== "Line") return;
  const line = event.layer.toGeoJSON().geometry;
  map.removeLayer(event.layer);
  splitEdit(line);
});

async function start() {
  await basemaps.control(map).catch(console.error);
  await loadCommunities();
}

$("community").addEventListener("change", (e) => { state.grid = null; loadCommunity(e.target.value); });
$("grid").addEventListener("change", (e) => selectGrid(e.target.value));
$("edit").addEventListener("click", startEditing);
$("split").addEventListener("click", () => map.pm.enableDraw("Line", { snappable: true }));
$("merge").addEventListener("click", mergeEdit);
$("move-shared").addEventListener("change", () => state.pending && runPreview());
$("save").addEventListener("click", save);
$("cancel").addEventListener("click", () => { cancel(); gridsLayer.clearLayers().addData({ type: "FeatureCollection", features: state.grids }); });
$("history").addEventListener("click", (e) => {
  const version = e.target.dataset.version;
  if (!version) return;
  const code = state.grid;
  setPending("revert", (preview) => request("POST", `/api/grids/${code}/revert`,
    { version: Number(version), preview, reason: $("reason").value, move_shared_boundary: $("move-shared").checked }, { "If-Match": state.etag }));
});

window.planner = { boundaryEdit, splitEdit, selectGrid, state };  // the same entry points the map handlers use
gridgov.setup(LABELS, start);
