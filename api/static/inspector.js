// gridgov inspector page: enclosures, openings coloured by status, checkpoints, households beyond the walking
// threshold, a patrol route, and editing an opening's status. Data from /api/inspection in EPSG:4326 (lon, lat).
"use strict";
const LABELS = {
  zh: { checkpoints_staffed: "卡口（有人值守 / 全部）", hours_off: "不值守", hours_always: "全天 24 小时",
        staff_n: "值守人数", editing: "正在编辑", route_start: "起点", not_for_role: "卡口督查页面供督查员、规划员和管理员使用；网格员请使用手机端“网格走访”页面。",
        solver_trivial: "直达", "solver_held-karp": "精确算法·动态规划", "solver_exact-dfj": "精确算法·整数规划",
        "solver_or-tools-gls": "启发式·OR-Tools 引导局部搜索", "solver_or-tools-gls+2opt": "启发式·引导局部搜索＋2-opt/or-opt", title: "卡口督查", scope: "范围", enclosure: "围合", all: "全部", threshold: "距离阈值 (米)", distance: "距离",
        walk: "步行距离", straight: "直线距离", refresh: "刷新", print: "打印报告", opening: "出入口", status: "状态",
        st_open: "未封闭·无人值守", st_sealed: "已封闭", st_checkpoint: "卡口", barrier_kind: "封闭方式",
        bk_water_barrier: "水马", bk_fence: "围挡", bk_wall: "砌墙", bk_locked_gate: "锁闭大门", bk_other: "其他",
        bk_unrecorded: "未登记类型", width: "宽度 (米)", cp_name: "卡口名称", cp_hours: "值守时间", cp_staff: "值守人数",
        save: "保存", close: "关闭", patrol: "巡查路线", network: "路网", net_walk: "步行", net_drive: "车行（遵守单行）",
        patrol_hint: "点击地图设定起点；路线经过所选围合的全部有人值守卡口并返回起点。", plan_patrol: "规划巡查路线",
        enclosures: "围合", openings: "出入口", sealed: "已封闭", checkpoints: "卡口", staffed: "有人值守",
        unguarded: "未管控出入口", barrier: "封闭围挡", households: "住户", beyond: "超出阈值住户",
        no_staff_hours: "无人值守时长 (小时/周)", grids_without: "无卡口网格", many_grids: "服务多网格卡口",
        leg_open: "未封闭", leg_sealed: "已封闭", leg_staffed: "有人值守卡口", leg_unstaffed: "无人值守卡口",
        leg_beyond: "超出阈值的楼栋", saved: "已保存", stale: "该出入口已被他人修改，已重新加载", loading: "加载中…",
        length: "长度", minutes: "分钟", stops: "站点", optimal: "已证明最优", not_optimal: "近似最优",
        street: "道路", reason: "原因", choose_start: "起点已设定", no_checkpoints: "没有有人值守的卡口",
        distance_walk: "步行距离（步行路网）", distance_straight: "直线距离", edit: "编辑", nearest: "距离",
        unguarded_short: "未管控", edit_hint: "点击地图上的出入口圆点，可查看并修改其状态（封闭、卡口）。" },
  en: { checkpoints_staffed: "Checkpoints (staffed / all)", hours_off: "not staffed", hours_always: "24 hours",
        staff_n: "Staff", editing: "Editing", route_start: "Start", not_for_role: "This page is for inspectors, planners and administrators; grid workers use the field page on their phone.",
        solver_trivial: "direct", "solver_held-karp": "exact, dynamic programming", "solver_exact-dfj": "exact, integer programming",
        "solver_or-tools-gls": "heuristic, OR-Tools guided local search", "solver_or-tools-gls+2opt": "heuristic, guided local search + 2-opt/or-opt", title: "Checkpoint inspection", scope: "Area", enclosure: "Enclosure", all: "All", threshold: "Threshold (m)",
        distance: "Distance", walk: "Walking", straight: "Straight line", refresh: "Refresh", print: "Print report",
        opening: "Opening", status: "Status", st_open: "Open, unguarded", st_sealed: "Sealed", st_checkpoint: "Checkpoint",
        barrier_kind: "Barrier", bk_water_barrier: "Water-filled barrier", bk_fence: "Fence", bk_wall: "Wall",
        bk_locked_gate: "Locked gate", bk_other: "Other", bk_unrecorded: "Not recorded", width: "Width (m)",
        cp_name: "Checkpoint name", cp_hours: "Staffed hours", cp_staff: "Staff", save: "Save", close: "Close",
        patrol: "Patrol route", network: "Network", net_walk: "Walking", net_drive: "Driving (one-way honoured)",
        patrol_hint: "Click the map to set the start; the route visits every staffed checkpoint of the chosen enclosure and comes back.",
        plan_patrol: "Plan patrol", enclosures: "Enclosures", openings: "Openings", sealed: "Sealed",
        checkpoints: "Checkpoints", staffed: "Staffed", unguarded: "Unguarded openings", barrier: "Barrier",
        households: "Households", beyond: "Households beyond threshold", no_staff_hours: "Hours/week with no staffed checkpoint",
        grids_without: "Grids without checkpoint", many_grids: "Checkpoints serving many grids", leg_open: "Open",
        leg_sealed: "Sealed", leg_staffed: "Staffed checkpoint", leg_unstaffed: "Unstaffed checkpoint",
        leg_beyond: "Buildings beyond threshold", saved: "Saved", stale: "Someone else changed this opening: reloaded",
        loading: "Loading…", length: "Length", minutes: "min", stops: "Stops", optimal: "proven optimal",
        not_optimal: "near-optimal", street: "Street", reason: "Reason", choose_start: "Start set",
        no_checkpoints: "No staffed checkpoint", distance_walk: "walking distance (footpath network)",
        distance_straight: "straight-line distance", edit: "Edit", nearest: "Distance",
        unguarded_short: "unguarded",
        edit_hint: "Tap an opening's dot on the map to see and change its status (sealed, checkpoint)." },
};
const { t, esc, api, request } = gridgov;
const $ = (id) => document.getElementById(id);
const COLOURS = { ...gridgov.OPENING_COLOURS, beyond: "#8e24aa" };
const map = L.map("map", { preferCanvas: false, zoomSnap: 0.25 }).setView([22.565, 114.072], 16);
map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
const streets = L.geoJSON(null, { style: (f) => ({ color: f.properties.car ? "#b0b0b0" : "#d8c29d", weight: f.properties.car ? 3 : 1.5 }), interactive: false }).addTo(map);
// Building footprints under everything (issue 19 item 4: the inspector's map drew none), no taps.
const buildings = L.geoJSON(null, { style: { color: "#7a5230", weight: 1, fillColor: "#c8b59a", fillOpacity: 0.5 },
                                    interactive: false }).addTo(map);
const enclosures = L.geoJSON(null, { style: { color: "#1f3b5a", weight: 2, fillOpacity: 0.04 },
  onEachFeature: (f, l) => l.bindTooltip(esc(f.properties.name), { sticky: true }) }).addTo(map);
const barriers = L.geoJSON(null, { style: { color: "#424242", weight: 6, opacity: 0.8 }, interactive: false }).addTo(map);
const beyond = L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, { radius: 4 + Math.sqrt(f.properties.households), color: COLOURS.beyond, weight: 2, fillOpacity: 0.3 }),
  onEachFeature: (f, l) => l.bindPopup(() => buildingPopup(f.properties)) }).addTo(map);
const openings = L.geoJSON(null, { pointToLayer: (f, ll) => L.circleMarker(ll, openingStyle(f.properties)),
  onEachFeature: (f, l) => { l.on("click", () => edit(f.properties.id)); l.bindTooltip(() => openingTip(f.properties)); } }).addTo(map);
const route = L.geoJSON(null, { style: { color: "#1565c0", weight: 4, opacity: 0.8 } }).addTo(map);
const routeMarks = L.layerGroup().addTo(map);      // numbered stops and arrows along the patrol route
let editRing = null;                                // the ring around the opening being edited
let startMarker = null;
const state = { division: null, enclosure: null, opening: null, start: null, report: null };

function colourOf(p) {
  return COLOURS[gridgov.openingClass(p)];
}
function openingStyle(p) {
  return { radius: p.unguarded ? 9 : 6, color: "#fff", weight: 2, fillColor: colourOf(p), fillOpacity: 1,
           bubblingMouseEvents: false };
}
const lang = gridgov.label;
function solverName(method) { const name = t("solver_" + method); return name === "solver_" + method ? method : name; }
// Staffed hours as a person reads them: "off" and "24/7" in words, the days of OSM's opening_hours syntax in
// Chinese on the Chinese page ("Mo-Fr 08:00-18:00" → "周一至周五 08:00-18:00").
const DAYS_ZH = { Mo: "周一", Tu: "周二", We: "周三", Th: "周四", Fr: "周五", Sa: "周六", Su: "周日", PH: "法定节假日" };
function hoursText(hours) {
  if (!hours || hours === "off") return t("hours_off");
  if (hours === "24/7") return t("hours_always");
  if (gridgov.state.lang !== "zh") return hours;
  return hours.replace(/\b(Mo|Tu|We|Th|Fr|Sa|Su|PH)\b/g, (d) => DAYS_ZH[d]).replace(/(周.|法定节假日)-(周.)/g, "$1至$2")
    .replace(/\boff\b/g, t("hours_off"));
}
function openingTip(p) {
  const cp = p.checkpoint ? `<br>${esc(p.checkpoint.name)} · ${esc(hoursText(p.checkpoint.opening_hours))} · ` +
    `${esc(t("staff_n"))} ${p.checkpoint.staff_count}` : "";
  const why = p.unguarded ? `<br><b>${esc(lang(p.unguarded))}</b>` : "";
  return `#${p.id} ${esc(lang(p.status))} · ${esc(p.street_name || "")}${cp}${why}`;
}
function buildingPopup(p) {
  return `<b>${esc(p.name || p.code || p.building_id)}</b><br>${esc(t("households"))} ${p.households}<br>` +
    `${esc(t("nearest"))} ${p.distance_m === null ? "—" : Math.round(p.distance_m) + " m"} (${esc(t("distance_" + p.distance))})`;
}
function message(text, kind = "") { $("message").textContent = text; $("message").className = kind; }
function query() {
  const q = new URLSearchParams({ threshold_m: $("threshold").value, distance: $("distance").value });
  if (state.enclosure) q.set("enclosure_id", state.enclosure); else q.set("division", state.division);
  return q;
}

function legend() {
  $("legend").innerHTML = [["open", "leg_open"], ["sealed", "leg_sealed"], ["staffed", "leg_staffed"],
    ["unstaffed", "leg_unstaffed"], ["beyond", "leg_beyond"]].map(([c, k]) =>
    `<span><i style="background:${COLOURS[c]}"></i>${esc(t(k))}</span>`).join(" ");
}

async function loadDivisions() {
  const fc = await api("/api/layers/divisions");
  const options = fc.features.filter((f) => f.properties.level !== "district")
    .sort((a, b) => a.properties.code.localeCompare(b.properties.code))
    .map((f) => `<option value="${esc(f.properties.code)}">${esc(f.properties.level === "community" ? "· " : "")}${esc(gridgov.state.lang === "zh" ? f.properties.name : f.properties.name_en || f.properties.name)}</option>`);
  $("division").innerHTML = options.join("");
  if (state.division) $("division").value = state.division;
  state.division = $("division").value;
}

async function loadEnclosures() {
  const fc = await api(`/api/inspection/enclosures?division=${state.division}`);
  enclosures.clearLayers().addData(fc);
  $("enclosure").innerHTML = `<option value="">${esc(t("all"))}</option>` + fc.features.map((f) =>
    `<option value="${f.id}">${esc(f.properties.name)} · ${esc(t("unguarded_short"))} ${f.properties.unguarded} / ` +
    `${esc(t("openings"))} ${f.properties.openings}</option>`).join("");
  if (state.enclosure && fc.features.some((f) => String(f.id) === String(state.enclosure))) $("enclosure").value = state.enclosure;
  else state.enclosure = null;
  const bounds = enclosures.getBounds();
  if (bounds.isValid()) {
    map.fitBounds(bounds, { animate: false });
    const b = bounds.pad(0.1), bbox = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].join(",");
    const [lines, footprints] = await Promise.all([api(`/api/layers/streets?limit=10000&bbox=${bbox}`),
                                      api(`/api/layers/buildings?limit=10000&bbox=${bbox}`)]);
    streets.clearLayers().addData(lines);
    buildings.clearLayers().addData(footprints);
    document.body.dataset.buildings = footprints.features.length;
  }
}

async function loadCoverage() {
  message(t("loading"));
  const q = query();
  const [report, ops, bars, far] = await Promise.all([
    api(`/api/inspection/coverage?${q}`), api(`/api/inspection/layers/openings?${q}`),
    api(`/api/inspection/layers/barriers?${q}`), api(`/api/inspection/layers/households_beyond?${q}`)]);
  state.report = report;
  openings.clearLayers().addData(ops);
  barriers.clearLayers().addData(bars);
  beyond.clearLayers().addData(far);
  summary(report);
  if (state.enclosure) {
    const layer = enclosures.getLayers().find((l) => String(l.feature.id) === String(state.enclosure));
    if (layer) map.fitBounds(layer.getBounds(), { animate: false });
  }
  message("");
  document.body.dataset.openings = String(ops.features.length);
  document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1);
}

function summary(r) {
  const s = r.totals, hours = r.enclosures.reduce((a, e) => a + e.hours.hours_without_staffed_checkpoint, 0);
  const row = (key, value, id, bad) => `<tr><th>${esc(t(key))}</th><td class="n ${bad ? "bad" : "good"}" id="${id}">${esc(value)}</td></tr>`;
  $("summary").innerHTML = `<table>
    ${row("enclosures", s.enclosures, "sum-enclosures")}
    ${row("openings", s.openings, "sum-openings")}
    ${row("sealed", s.sealed, "sum-sealed")}
    ${row("checkpoints_staffed", `${s.staffed_checkpoints} / ${s.checkpoints}`, "sum-checkpoints")}
    ${row("unguarded", s.unguarded, "sum-unguarded", s.unguarded > 0)}
    ${row("barrier", s.barrier_m + " m", "sum-barrier")}
    ${row("no_staff_hours", Math.round(hours * 10) / 10, "sum-hours", hours > 0)}
    ${row("beyond", `${s.households_beyond} / ${s.households}`, "sum-beyond", s.households_beyond > 0)}
    ${row("grids_without", s.grids_without_checkpoint, "sum-grids", s.grids_without_checkpoint > 0)}
    ${row("many_grids", s.checkpoints_serving_many_grids, "sum-many")}
  </table><p class="hint" id="distance-kind">${esc(lang(r.distance))} · ${r.threshold_m} m</p>`;
}

async function edit(id) {
  const f = await api(`/api/inspection/openings/${id}`);
  const p = f.properties;
  state.opening = p;
  if (editRing) editRing.remove();
  const [lon, lat] = f.geometry.coordinates;
  editRing = L.circleMarker([lat, lon], { radius: 15, color: "#1565c0", weight: 4, fill: false, dashArray: "4 3",
                                          interactive: false, className: "edit-ring" }).addTo(map);
  $("editor").hidden = false;
  $("edit-title").textContent = `#${p.id} ${p.street_name || ""} · ${t("editing")}`;
  $("edit-status").value = p.status.code;
  $("edit-barrier").value = p.barrier_kind ? p.barrier_kind.code : "water_barrier";
  $("edit-width").value = p.width_m;
  $("edit-cp-name").value = p.checkpoint ? p.checkpoint.name : "";
  $("edit-cp-hours").value = p.checkpoint && p.checkpoint.opening_hours !== "off" ? p.checkpoint.opening_hours : "24/7";
  $("edit-cp-staff").value = p.checkpoint && p.checkpoint.staff_count > 0 ? p.checkpoint.staff_count : 1;
  toggleEditor();
  $("editor").scrollIntoView({ block: "nearest" });  // on a phone the panel is below the map: show what was tapped
}
function toggleEditor() {
  $("edit-sealed").hidden = $("edit-status").value !== "sealed";
  $("edit-checkpoint").hidden = $("edit-status").value !== "checkpoint";
}

async function save() {
  const p = state.opening, status = $("edit-status").value;
  const body = { version: p.version, status };
  if (status === "sealed") { body.barrier_kind = $("edit-barrier").value; body.width_m = Number($("edit-width").value); }
  if (status === "checkpoint") {
    body.checkpoint = { name: $("edit-cp-name").value || null, opening_hours: $("edit-cp-hours").value,
                        staff_count: Number($("edit-cp-staff").value), kind: p.checkpoint ? p.checkpoint.kind.code : "pedestrian" };
  }
  try {
    await request("PATCH", `/api/inspection/openings/${p.id}`, body);
    message(t("saved"), "ok");
    await loadCoverage();
    await edit(p.id);
    message(t("saved"), "ok");
  } catch (err) {
    if (err.status === 412) { await edit(p.id); message(t("stale"), "error"); return; }
    message(err.message, "error");
  }
}

function showStart() {
  if (startMarker) startMarker.remove();
  startMarker = L.circleMarker([state.start[1], state.start[0]], { radius: 8, color: "#0d47a1", weight: 3, fillColor: "#fff", fillOpacity: 1 }).addTo(map);
  message(t("choose_start"), "ok");
}

async function planPatrol() {
  const staffed = openings.getLayers().map((l) => l.feature.properties).filter((p) => p.checkpoint && p.checkpoint.staffed);
  if (!staffed.length) { message(t("no_checkpoints"), "error"); return; }
  if (!state.start) { const c = map.getCenter(); state.start = [c.lng, c.lat]; showStart(); }
  try {
    const { data } = await request("POST", "/api/inspection/patrols", { start: state.start, closed: true,
      network: $("network").value, checkpoint_ids: staffed.map((p) => p.checkpoint.id) });
    route.clearLayers().addData(data.geometry);
    markRoute(data);
    const steps = data.legs.flatMap((leg) => leg.steps).filter((s) => s.name);
    $("patrol-info").innerHTML = `<p id="patrol-length">${esc(t("length"))} ${Math.round(data.length_m)} m · ` +
      `${Math.round(data.duration_s / 60)} ${esc(t("minutes"))} · ${esc(data.optimal ? t("optimal") : t("not_optimal"))} (${esc(solverName(data.solver))})</p>` +
      `<ol id="patrol-stops">${data.stops.map((s) => `<li>${esc(s.name)} · ${Math.round(s.arrival_m)} m</li>`).join("")}</ol>` +
      `<p class="hint">${steps.slice(0, 12).map((s) => esc(s.name)).join(" → ")}${steps.length > 12 ? " …" : ""}</p>`;
    document.body.dataset.patrol = String(data.stops.length);
    $("patrol-info").scrollIntoView({ block: "nearest" });  // on a phone: below the fold otherwise
    message("");
  } catch (err) { message(err.message, "error"); }
}

// The route's stops numbered in the order walked (起 at the start) and an arrow every ~150 m pointing the way.
function markRoute(data) {
  routeMarks.clearLayers();
  const label = (text, cls) => L.divIcon({ className: `route-mark ${cls}`, html: esc(text), iconSize: [22, 22] });
  L.marker([state.start[1], state.start[0]], { icon: label(t("route_start").slice(0, 1), "start"), interactive: false }).addTo(routeMarks);
  [...data.stops].sort((a, b) => a.order - b.order).forEach((s, i) => L.marker([s.location[1], s.location[0]], { icon: label(String(i + 1), "stop"), title: s.name,
                                                                          zIndexOffset: 1000 }).addTo(routeMarks));
  const lines = data.geometry.type === "MultiLineString" ? data.geometry.coordinates : [data.geometry.coordinates];
  let walked = 0;
  for (const line of lines) {
    for (let i = 1; i < line.length; i++) {
      const a = L.latLng(line[i - 1][1], line[i - 1][0]), b = L.latLng(line[i][1], line[i][0]);
      walked += a.distanceTo(b);
      if (walked < 150) continue;
      walked = 0;
      const pa = map.options.crs.project(a), pb = map.options.crs.project(b);  // bearing in Web Mercator: any zoom
      const angle = Math.atan2(-(pb.y - pa.y), pb.x - pa.x) * 180 / Math.PI;
      L.marker(b, { icon: L.divIcon({ className: "route-arrow", html: `<span style="transform: rotate(${Math.round(angle)}deg)">➤</span>`,
                                      iconSize: [16, 16] }), interactive: false }).addTo(routeMarks);
    }
  }
}

// The printable report at an address of its own (/inspector/report?…): the new tab shares this tab's login.
function printReport() { window.open(`/inspector/report?${query()}`, "_blank"); }

async function start(me) {
  if (me.role === "grid_worker") { message(t("not_for_role"), "error"); $("panel").inert = true; return; }
  legend();
  await basemaps.control(map).catch(console.error);
  await loadDivisions();
  await loadEnclosures();
  await loadCoverage();
}

$("division").addEventListener("change", async () => { state.division = $("division").value; state.enclosure = null;
  await loadEnclosures(); await loadCoverage(); });
$("enclosure").addEventListener("change", async () => { state.enclosure = $("enclosure").value || null; await loadCoverage(); });
$("refresh").addEventListener("click", () => loadCoverage().catch((err) => message(err.message, "error")));
$("print").addEventListener("click", printReport);
$("edit-status").addEventListener("change", toggleEditor);
$("edit-save").addEventListener("click", save);
$("edit-close").addEventListener("click", () => {
  $("editor").hidden = true; state.opening = null;
  if (editRing) { editRing.remove(); editRing = null; }
});
$("patrol").addEventListener("click", planPatrol);
map.on("click", (e) => { state.start = [e.latlng.lng, e.latlng.lat]; showStart(); });
window.inspector = { edit, loadCoverage, state, tip: openingTip,
                     openings: () => openings.getLayers().map((l) => l.feature.properties) };
gridgov.setup(LABELS, start);
