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
        handed_over: "网格员随地块调整", unchanged: "未改变边界", choose_grid: "请先选择网格",
        split_suffix: "（拆分）", touched: "涉及的网格", new_grid: "新网格", buildings_unit: "栋", households_unit: "户",
        levels: "层数" },
  en: { title: "Grid planning", community: "Community", grid: "Grid", edit: "Edit boundary", split: "Draw split line",
        new_name: "New grid name", merge_with: "Merge with", merge: "Preview merge", move_shared: "Move shared boundaries of neighbours",
        reason: "Reason for the change", save: "Save", cancel: "Cancel", history: "History", revert: "Revert to this version",
        households: "Households", residents: "Residents", workers: "Workers", per_worker: "per worker", version: "Version",
        gaps: "Uncovered land", overlaps: "Overlaps", outside: "Outside the community", cut: "Buildings cut",
        moved: "Buildings changing grid", ok_report: "No overlap, nothing outside, no building cut", saved: "Saved",
        need_reason: "Please give a reason", stale: "Someone else changed this grid: reload and edit again",
        conflict: "Not saved: ", none: "none", choose: "—", handed_over: "Grid workers moved with their land",
        unchanged: "The boundary did not change", choose_grid: "Choose a grid first", split_suffix: " (split)",
        touched: "Grids the change touches", new_grid: "new grid", buildings_unit: "buildings", households_unit: "households",
        levels: "Floors" },
};
// Leaflet-Geoman's hints while drawing a split line, in Chinese (its own 'zh' table is partial and generic);
// the page only draws lines, so the hints speak of the split line. Keys as in Geoman 2.20's English table.
const GEOMAN_ZH = {
  tooltips: { placeMarker: "单击放置标记", placeMarkerTouch: "点击地图放置标记", firstVertex: "单击放置拆分线的起点（网格内外均可）",
              continueLine: "单击添加下一点", finishLine: "单击最后一点或按回车结束拆分线", finishPoly: "单击第一个点结束",
              finishRect: "单击结束", startCircle: "单击放置圆心", finishCircle: "单击结束圆形", placeCircleMarker: "单击放置圆形标记",
              placeText: "单击放置文字", selectFirstLayerFor: "选择第一个图层（{action}）", selectSecondLayerFor: "选择第二个图层（{action}）" },
  actions: { finish: "完成", cancel: "取消", removeLastVertex: "撤销上一点" },
  buttonTitles: { drawMarkerButton: "绘制标记", drawPolyButton: "绘制多边形", drawLineButton: "绘制折线", drawCircleButton: "绘制圆形",
                  drawRectButton: "绘制矩形", editButton: "编辑图层", dragButton: "拖动图层", cutButton: "剪切图层", deleteButton: "删除图层",
                  drawCircleMarkerButton: "绘制圆形标记", snappingButton: "拖动的点吸附到其他图层和顶点", pinningButton: "共享顶点一起移动",
                  rotateButton: "旋转图层", drawTextButton: "绘制文字", scaleButton: "缩放图层", autoTracingButton: "自动追踪线",
                  snapGuidesButton: "显示吸附辅助线", unionButton: "合并图层", differenceButton: "相减图层" },
  measurements: { totalLength: "长度", segmentLength: "线段长度", area: "面积", radius: "半径", perimeter: "周长", height: "高度",
                  width: "宽度", coordinates: "位置", coordinatesMarker: "标记位置" },
};
const MIN_VERTEX_GAP_M = 0.5;   // boundary vertices closer than this (metres, on the sphere) are one vertex
const SPLIT_OVERSHOOT_M = 2;    // a split line ending inside the grid is carried this far past its boundary
const { t, esc, api, request } = gridgov;
const $ = (id) => document.getElementById(id);
const map = L.map("map", { preferCanvas: false, zoomSnap: 0.25 }).setView([22.565, 114.072], 16);
map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
// A click on a grid selects it, except while a split line is drawn or a boundary edited: then the click belongs to
// Geoman (it places a point of the line, or misses a handle) and must not end the drawing.
const gridsLayer = L.geoJSON(null, { style: gridStyle, onEachFeature: (f, l) => l.on("click", () => {
  if (!busy()) selectGrid(f.properties.code);
}) }).addTo(map);
// Buildings open a popup with their counts; while a line is drawn or a boundary edited the click is Geoman's.
const buildingsLayer = L.geoJSON(null, { style: { color: "#7a5230", weight: 1, fillColor: "#8fa9c9", fillOpacity: 0.6 }, pmIgnore: true,
  onEachFeature: (f, l) => l.on("click", (e) => {
    if (busy()) return;
    L.DomEvent.stopPropagation(e);
    L.popup().setLatLng(e.latlng).setContent(buildingPopup(f)).openOn(map);
  }) }).addTo(map);
const reportLayer = L.geoJSON(null, { style: reportStyle, pmIgnore: true, interactive: false }).addTo(map);
const state = { community: null, grid: null, etag: null, grids: [], pending: null, editing: null, previews: 0 };
const busy = () => map.pm.globalDrawModeEnabled() || state.editing !== null;

function gridStyle(f) {
  const h = f.properties.households, ok = h >= 300 && h <= 500, selected = f.properties.code === state.grid;
  return { color: selected ? "#d81b60" : "#1f3b5a", weight: selected ? 3 : 1.5,
           fillColor: f.properties.kind === "dedicated" ? "#9c27b0" : ok ? "#4caf50" : "#ff9800", fillOpacity: 0.2 };
}
function reportStyle(f) {
  return { gap: { color: "#d32f2f", fillColor: "#d32f2f", fillOpacity: 0.5, weight: 1 },
           overlap: { color: "#ef6c00", fillColor: "#ff9800", fillOpacity: 0.6, weight: 1 },
           outside: { color: "#6a1b9a", fillColor: "#ab47bc", fillOpacity: 0.5, weight: 1 },
           proposed: { color: "#d81b60", weight: 2, dashArray: "6 4", fill: false },
           line: { color: "#263238", weight: 2, dashArray: "2 4" } }[f.properties.what];
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
  if (code !== state.community) {
    resetPanel();
    document.dispatchEvent(new CustomEvent("planner:community", { detail: code }));
  }
  else cancel();  // handles off before their layers go
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
  await selectGrid(state.grids.some((f) => f.properties.code === state.grid) ? state.grid : null);
}

// Everything the panel shows about a grid or a pending change, back to nothing (another community was chosen).
function resetPanel() {
  state.etag = null;
  $("reason").value = "";
  selectGrid(null);
}

async function selectGrid(code) {
  cancel();
  const changed = state.grid !== (code || null);
  state.grid = code || null;
  $("grid").value = code || "";
  gridsLayer.setStyle(gridStyle);
  if (changed) document.dispatchEvent(new CustomEvent("planner:grid", { detail: state.grid }));
  if (!code) { $("grid-info").textContent = ""; $("history").innerHTML = ""; $("new-name").value = ""; return; }
  $("new-name").value = defaultNewName(code);
  const { data, headers } = await request("GET", `/api/grids/${code}`);
  if (state.grid !== code) return;  // another grid or community was chosen meanwhile
  state.etag = headers.get("ETag");
  const p = state.grids.find((f) => f.properties.code === code)?.properties || {};
  $("grid-info").innerHTML = `<b>${esc(data.properties.name)}</b> ${esc(code)}<br>${esc(t("version"))} ${data.properties.version}` +
    ` · ${esc(t("households"))} ${p.households ?? "–"} · ${esc(t("residents"))} ${p.residents ?? "–"}`;
  await loadHistory(code);
}

async function loadHistory(code) {
  const versions = await api(`/api/grids/${code}/versions`);
  if (state.grid !== code) return;
  $("history").innerHTML = versions.slice().reverse().map((v) =>
    `<li>v${v.version} · ${esc(v.author)} · ${esc(new Date(v.valid_from).toLocaleString())}<br><i>${esc(v.reason)}</i>` +
    (v.valid_to ? `<button type="button" data-version="${v.version}">${esc(t("revert"))}</button>` : "") + `</li>`).join("");
}

function layerOf(code) { return gridsLayer.getLayers().find((l) => l.feature.properties.code === code); }

// The name proposed for the part a split cuts off: "上沙村第14网格" → the community's next free number,
// "上沙村第19网格" (the number of the code the server gives it, when the names follow the codes); other names get
// a suffix: "沙尾小学专属网格（拆分）". Editable in the panel.
function defaultNewName(code) {
  const name = state.grids.find((f) => f.properties.code === code)?.properties.name || "";
  const m = /^(.*第)(\d+)(网格)$/.exec(name);
  if (!m) return name + t("split_suffix");
  const numbers = state.grids.map((f) => f.properties.name.startsWith(m[1]) && f.properties.name.endsWith(m[3])
    ? Number(f.properties.name.slice(m[1].length, -m[3].length)) || 0 : 0);
  return `${m[1]}${Math.max(...numbers) + 1}${m[3]}`;
}

// -- pending operations: each knows how to send itself as a preview or for real ----------------------------
function setPending(kind, send, extra = {}) {
  state.pending = { kind, send, ...extra };
  return runPreview();
}
async function runPreview() {
  const pending = state.pending, seq = ++state.previews;
  message("");
  try {
    const { data } = await pending.send(true);
    if (seq !== state.previews || pending !== state.pending) return;  // a newer change was previewed meanwhile
    showReport(data);
    if (pending.line) reportLayer.addData({ type: "Feature", geometry: pending.line, properties: { what: "line" } });
    document.body.dataset.preview = String(Number(document.body.dataset.preview || 0) + 1);
  } catch (error) { if (seq === state.previews) showError(error); }
}
function boundaryEdit(geometry) {
  const code = state.grid;
  return setPending("redraw", (preview) => request("PUT", `/api/grids/${code}/boundary`,
    { geometry, preview, reason: $("reason").value, move_shared_boundary: $("move-shared").checked }, { "If-Match": state.etag }));
}
function splitEdit(line) {
  const code = state.grid;
  return setPending("split", (preview) => request("POST", `/api/grids/${code}/split`,
    { line, preview, reason: $("reason").value, new_name: $("new-name").value.trim() || defaultNewName(code) },
    { "If-Match": state.etag }), { line });
}
async function mergeEdit() {
  const other = $("merge-with").value, code = state.grid;
  if (!other || !code || other === code) return;
  const tag = (await request("GET", `/api/grids/${other}`)).headers.get("ETag");
  return setPending("merge", (preview) => request("POST", "/api/grids/merge",
    { codes: [code, other], preview, reason: $("reason").value }, { "If-Match": `${state.etag}, ${tag}` }));
}

// The report of a previewed change: red when the server would refuse to save it (overlaps, land outside the
// community, cut buildings; 保存 stays off), amber when it may be saved but a touched grid falls outside the
// households range or land is left uncovered, green otherwise. Moved buildings are counted per pair of grids; the
// workload table lists the grids the change touches.
function showReport(result) {
  const r = result.report;
  reportLayer.clearLayers();
  const add = (geometry, what) => reportLayer.addData({ type: "Feature", geometry, properties: { what } });
  r.gaps.pieces.forEach((p) => add(p.geometry, "gap"));
  r.overlaps.forEach((p) => add(p.geometry, "overlap"));
  r.outside.forEach((p) => add(p.geometry, "outside"));
  const proposed = result.grids.features.filter((f) => !f.properties.retired);
  proposed.forEach((f) => add(f.geometry, "proposed"));
  document.body.dataset.proposed = String(proposed.length);
  const warnings = r.warning_codes || [];
  const level = !r.ok ? "bad" : warnings.length ? "warn" : "good";
  const said = (items) => items.map((item) => gridgov.say({ detail: item.code, ...item })).join("；");
  const status = !r.ok ? said(r.problem_codes) : warnings.length ? said(warnings) : t("ok_report");
  const touched = r.workload.filter((w) => w.touched !== false);
  const rows = touched.map((w) => `<tr class="${w.in_range ? "" : "warn"}"><td>${esc(w.grid.slice(-2))}</td><td>${w.households}</td>` +
    `<td>${w.workers}</td><td>${w.households_per_worker ? Math.round(w.households_per_worker) : "–"}</td></tr>`).join("");
  $("report").innerHTML =
    `<p class="${level}" id="report-status" data-level="${level}">${esc(status)}</p>` +
    `<p>${esc(t("gaps"))}: ${r.gaps.area_m2} m² · ${esc(t("overlaps"))}: ${r.overlaps.length} · ${esc(t("cut"))}: ${r.cut_buildings.length}</p>` +
    `<p>${esc(t("moved"))}: <span id="moved-count">${r.moved_buildings.length}</span></p><ul id="moved">${movedGroups(r.moved_buildings)}</ul>` +
    `<table><caption>${esc(t("touched"))}</caption><tr><th>${esc(t("grid"))}</th><th>${esc(t("households"))}</th>` +
    `<th>${esc(t("workers"))}</th><th>${esc(t("per_worker"))}</th></tr>${rows}</table>`;
  $("save").disabled = !r.ok;
}

// "14 → 19: 12 栋 · 205 户" per pair of grids (last two digits of the codes; "新" for a grid the change creates).
function movedGroups(moved) {
  const groups = new Map();
  moved.forEach((m) => {
    const key = `${m.from_grid ? m.from_grid.slice(-2) : "–"} → ${m.to_grid ? m.to_grid.slice(-2) : t("new_grid")}`;
    const g = groups.get(key) || { buildings: 0, households: 0 };
    g.buildings += 1; g.households += m.households;
    groups.set(key, g);
  });
  return [...groups].map(([key, g]) => `<li>${esc(key)}: ${g.buildings} ${esc(t("buildings_unit"))} · ` +
    `${g.households} ${esc(t("households_unit"))}</li>`).join("");
}

// A building's popup: name or code, its grid, households and residents (planners read counts in their scope).
function buildingPopup(f) {
  const p = f.properties, grid = state.grids.find((g) => g.properties.id === p.grid_id);
  return `<b>${esc(p.name || p.code || "#" + p.id)}</b><br>${esc(p.code || "")}<br>` +
    `${esc(t("grid"))}: ${esc(grid ? grid.properties.code.slice(-2) + " · " + grid.properties.name : "–")}<br>` +
    `${esc(t("households"))} ${p.households ?? "–"} · ${esc(t("residents"))} ${p.residents ?? "–"}` +
    (p.levels ? ` · ${esc(t("levels"))} ${p.levels}` : "");
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
    $("reason").value = "";
    await loadCommunity(state.community);
    const moved = (data.assignments || []).map((a) => `${a.username} ${a.from_grid.slice(-2)} → ${a.to_grid.slice(-2)}`);
    message(`${t("saved")} (${t("version")} ${version})` + (moved.length ? ` · ${t("handed_over")}: ${moved.join(", ")}` : ""), "ok");
  } catch (error) { showError(error); }
}

// No pending change and no report (a preview still on its way is ignored when it comes).
function clearPreview() {
  state.pending = null;
  state.previews++;
  $("save").disabled = true;
  reportLayer.clearLayers();
  $("report").innerHTML = "";
}

// Back to the saved grids: no pending change, no report, no drawing, no handles (an edited layer is redrawn).
// Global edit mode is never used (each edit enables one layer); disabling it when it was never enabled makes
// Geoman call map.off() with an undefined listener ("wrong listener type" warnings).
function cancel() {
  clearPreview();
  map.pm.disableDraw();
  if (state.editing) {
    state.editing = null;
    gridsLayer.eachLayer((l) => l.pm?.disable());
    gridsLayer.clearLayers().addData({ type: "FeatureCollection", features: state.grids });
  }
  message("");
}

// -- geometry helpers on Leaflet lat/lng arrays (rings are open, as Leaflet keeps them) ----------------------
const metres = (a, b) => L.CRS.Earth.distance(a, b);
const ringsOf = (latlngs) => (latlngs[0] instanceof L.LatLng ? [latlngs] : latlngs.flatMap(ringsOf));
const mapRings = (latlngs, f) => (latlngs[0] instanceof L.LatLng ? f(latlngs) : latlngs.map((x) => mapRings(x, f)));

// A ring without vertices closer than MIN_VERTEX_GAP_M metres to the vertex kept before them (the ring's last
// against its first too). Near-duplicates put Geoman's "insert vertex" handle over the vertex handles; a ring
// that would fall under three vertices is kept as it was.
function distinctVertices(ring) {
  const kept = [];
  ring.forEach((p) => { if (!kept.length || metres(kept[kept.length - 1], p) >= MIN_VERTEX_GAP_M) kept.push(p); });
  while (kept.length > 3 && metres(kept[kept.length - 1], kept[0]) < MIN_VERTEX_GAP_M) kept.pop();
  return kept.length >= 3 ? kept : ring;
}
// A ring without the vertices that lie on the straight line between their neighbours (within 1 cm): the
// vertex Geoman inserts from a middle handle and puts back when the drag is refused stays there, on the edge.
function cornersOnly(ring) {
  const R = 6371008.8, k = Math.PI / 180, c = Math.cos(ring[0].lat * k);  // local metres, for distances only
  let pts = ring.map((p) => ({ p, x: p.lng * k * R * c, y: p.lat * k * R }));
  for (let changed = true; changed && pts.length > 3;) {
    changed = false;
    for (let i = 0; i < pts.length && pts.length > 3; i++) {
      const a = pts[(i + pts.length - 1) % pts.length], v = pts[i], b = pts[(i + 1) % pts.length];
      const dx = b.x - a.x, dy = b.y - a.y, len2 = dx * dx + dy * dy;
      const s = len2 ? ((v.x - a.x) * dx + (v.y - a.y) * dy) / len2 : 0;
      const off = Math.hypot(v.x - a.x - s * dx, v.y - a.y - s * dy);
      if (s > 0 && s < 1 && off < 0.01) { pts.splice(i, 1); changed = true; i--; }
    }
  }
  return pts.map((q) => q.p);
}
// Whether two polygons have the same shape: the same corners (each within 1 cm), once near-duplicate vertices
// and vertices on straight edges are dropped from both.
function sameBoundary(a, b) {
  const essential = (ring) => cornersOnly(distinctVertices(ring));
  const ra = ringsOf(mapRings(a, essential)), rb = ringsOf(mapRings(b, essential));
  return ra.length === rb.length && ra.every((ring, i) => ring.length === rb[i].length &&
    ring.every((p, j) => metres(p, rb[i][j]) < 0.01));
}

// The map zoomed to one grid for drawing on it: its vertex handles apart, room for a line inside it.
function focus(layer) { map.fitBounds(layer.getBounds(), { padding: [40, 40], maxZoom: 20, animate: false }); }

function startEditing() {
  const layer = layerOf(state.grid);
  if (!layer) { message(t("choose_grid"), "error"); return; }
  if (state.editing === state.grid) return;
  cancel();
  const fresh = layerOf(state.grid);
  fresh.setLatLngs(mapRings(fresh.getLatLngs(), distinctVertices));
  const original = mapRings(fresh.getLatLngs(), (ring) => ring.map((p) => L.latLng(p.lat, p.lng)));
  state.editing = state.grid;
  focus(fresh);
  fresh.pm.enable({ snappable: true, snapDistance: 15, allowSelfIntersection: false });
  fresh.on("pm:edit", async () => {
    if (sameBoundary(fresh.getLatLngs(), original)) {  // e.g. an inserted vertex snapped back onto its neighbour
      clearPreview();
      message(t("unchanged"));
    } else await boundaryEdit(fresh.toGeoJSON().geometry);
    document.body.dataset.edits = String(Number(document.body.dataset.edits || 0) + 1);  // handled (for tests)
  });
}

function startSplit() {
  const layer = layerOf(state.grid);
  if (!layer) { message(t("choose_grid"), "error"); return; }
  cancel();
  focus(layer);
  map.pm.enableDraw("Line", { snappable: true, snapDistance: 15 });
}

// The line as drawn, with each end that lies inside the grid carried along its last segment to the grid's
// boundary and SPLIT_OVERSHOOT_M metres past it, so that a line drawn within the grid (from near one side to
// near the other) cuts it. Computed on Web Mercator coordinates of the local area (straight lines as on the map).
function reachBoundary(latlngs, layer) {
  const P = L.Projection.SphericalMercator, rings = ringsOf(layer.getLatLngs()).map((r) => r.map((p) => P.project(p)));
  const inside = (q) => rings.reduce((inn, ring) => ring.reduce((acc, a, i) => {
    const b = ring[(i + ring.length - 1) % ring.length];
    return (a.y > q.y) !== (b.y > q.y) && q.x < (b.x - a.x) * (q.y - a.y) / (b.y - a.y) + a.x ? !acc : acc;
  }, inn), false);
  const exit = (from, to) => {  // the first crossing of the ray from → to, beyond `to`, with a ring
    const d = to.subtract(from);
    let best = Infinity;
    rings.forEach((ring) => ring.forEach((a, i) => {
      const b = ring[(i + 1) % ring.length], e = b.subtract(a), den = d.x * e.y - d.y * e.x;
      if (Math.abs(den) < 1e-12) return;
      const w = a.subtract(from), s = (w.x * e.y - w.y * e.x) / den, u = (w.x * d.y - w.y * d.x) / den;
      if (s > 1 && u >= 0 && u <= 1) best = Math.min(best, s);
    }));
    if (!Number.isFinite(best)) return to;
    const scale = 1 / Math.cos(P.unproject(to).lat * Math.PI / 180);  // Mercator units per metre here
    return from.add(d.multiplyBy(best + SPLIT_OVERSHOOT_M * scale / d.distanceTo(L.point(0, 0))));
  };
  const pts = latlngs.map((p) => P.project(p)), n = pts.length;
  if (n < 2) return latlngs;
  if (inside(pts[n - 1])) pts[n - 1] = exit(pts[n - 2], pts[n - 1]);
  if (inside(pts[0])) pts[0] = exit(pts[1], pts[0]);
  return pts.map((q) => P.unproject(q));
}

map.on("pm:create", (event) => {
  if (event.shape !== "Line") return;
  const layer = layerOf(state.grid), drawn = event.layer.getLatLngs();
  map.removeLayer(event.layer);
  if (!layer) return;
  const line = L.polyline(reachBoundary(drawn, layer)).toGeoJSON().geometry;
  splitEdit(line);
});

// Geoman merges the override into the fallback's table in place: merged into its own 'zh' table, so that the
// English one stays English for a switch back.
function geomanLanguage() {
  if (gridgov.state.lang === "zh") map.pm.setLang("zh", GEOMAN_ZH, "zh");
  else map.pm.setLang("en");
}

async function start() {
  geomanLanguage();
  map.pm.setGlobalOptions({ finishOnEnter: true, exitModeOnEscape: true });
  await basemaps.control(map).catch(console.error);
  await loadCommunities();
}

$("community").addEventListener("change", (e) => loadCommunity(e.target.value));
$("grid").addEventListener("change", (e) => selectGrid(e.target.value));
$("edit").addEventListener("click", startEditing);
$("split").addEventListener("click", startSplit);
$("merge").addEventListener("click", mergeEdit);
$("move-shared").addEventListener("change", () => state.pending && runPreview());
$("save").addEventListener("click", save);
$("cancel").addEventListener("click", cancel);
$("history").addEventListener("click", (e) => {
  const version = e.target.dataset.version;
  const code = state.grid;
  if (!version || !code) return;
  setPending("revert", (preview) => request("POST", `/api/grids/${code}/revert`,
    { version: Number(version), preview, reason: $("reason").value, move_shared_boundary: $("move-shared").checked }, { "If-Match": state.etag }));
});

window.planner = { boundaryEdit, splitEdit, selectGrid, loadCommunity, state, map, layerOf, reachBoundary, buildingsLayer };  // the same entry points the map handlers use
gridgov.setup(LABELS, start);
