// gridgov field page (网格员外勤) for phones: where am I, who lives around me, record a visit, my grid's progress,
// the walking route to the households left. Data from /api/field in EPSG:4326 for the map; the position is sent in
// the coordinate system it was taken in (browser geolocation: WGS 84; WeChat / Amap / Tencent: GCJ-02).
// Visits recorded without a connection wait in localStorage and are sent when the phone is back online (a visit
// already stored answers 409, so sending twice records nothing twice); their households say 待上传 meanwhile. The
// last answers (grids, campaigns, the list and what the map drew) are kept in sessionStorage, beside the login, so
// that a reload without a connection shows them again (issue 19 item 6). Layout: docs/decisions/0023.
"use strict";
const LABELS = {
  zh: { title: "网格员外勤", locate: "定位我", online: "在线", offline: "离线", lon: "经度 x", lat: "纬度 y",
        crs: "坐标系", crs_wgs: "WGS 84（GPS、浏览器定位）", crs_gcj: "GCJ-02（微信、高德、腾讯）",
        set_position: "设为我的位置", radius: "范围", mode: "距离", straight: "直线", walk: "步行",
        only_unvisited: "只看未走访", refresh: "刷新附近住户", route: "规划走访路线", nearby: "附近住户",
        record_visit: "登记走访", result: "结果", note: "备注", save: "保存", cancel: "取消",
        note_wgs: "当前位置为 WGS 84 坐标（浏览器/GPS 定位）。", note_gcj: "当前位置为 GCJ-02 坐标（微信、高德、腾讯地图）。",
        note_tap: "也可点地图空白处，再点“移到这里”（WGS 84）；点楼栋圆点查看该楼住户。", move_here: "把我的位置移到这里",
        none_listed: "列表中没有该楼的住户（扩大范围后再试）。", note_wechat: "在微信中打开：微信地图坐标为 GCJ-02，浏览器定位为 WGS 84。",
        no_position: "请先定位或输入位置。", locating: "正在定位…", locate_failed: "无法定位：", bad_position: "请输入两个数字",
        households_found: "户", none_found: "附近没有您负责的住户", progress: "我的网格排查进度",
        no_campaign: "当前没有进行中的排查任务", screened: "已排查", targeted: "应排查", flagged: "远距离登记",
        saved: "已登记走访", duplicate: "该户已登记过，未重复记录", queued: "离线：已暂存，联网后自动上传",
        pending: "待上传", route_total: "全程", minutes: "分钟", route_none: "没有需要走访的住户", unit: "单元",
        far: "⚠ 登记位置距楼栋较远", distance: "距离", walk_distance: "步行", loading: "加载中…",
        reveal: "查看完整信息（需说明理由，将记录审计）", reveal_go: "查看", reveal_reason: "理由，如：电话联系户主",
        reveal_need: "请填写理由（至少 4 个字）", persons: "人", households_unit: "户",
        per_households: "户", here_at: "我的位置", edit_position: "改位置", no_position_yet: "尚未定位", shown_all: "共 {total} 户",
        shown_of: "最近 {count} 户 / 范围内共 {total} 户", more: "再显示 {n} 户", campaign: "排查任务",
        campaigns_open: "{n} 个排查任务进行中，请选择", visited_at: "走访时间", pending_sheet: "待上传（本机暂存，联网后自动上传）",
        cached: "离线：显示 {time} 保存的列表和地图", stop_here: "起点：您所在的楼栋",
        fix_visit: "更正走访结果（需说明理由，将记录审计）", fix_result: "正确的结果", fix_reason: "理由，如：误选，实为空置房",
        fix_send: "更正", fix_need: "请填写理由（至少 2 个字）", fixed: "已更正走访结果", corrected: "已更正" },
  en: { title: "Field work", locate: "Locate me", online: "online", offline: "offline", lon: "Longitude x",
        lat: "Latitude y", crs: "Coordinates", crs_wgs: "WGS 84 (GPS, browser location)",
        crs_gcj: "GCJ-02 (WeChat, Amap, Tencent)", set_position: "Use as my position", radius: "Radius",
        mode: "Distance", straight: "straight line", walk: "walking", only_unvisited: "only not yet visited",
        refresh: "Refresh nearby", route: "Plan my route", nearby: "Households nearby", record_visit: "Record a visit",
        result: "Result", note: "Note", save: "Save", cancel: "Cancel",
        note_wgs: "The position is WGS 84 (browser / GPS location).", note_gcj: "The position is GCJ-02 (WeChat, Amap, Tencent maps).",
        note_tap: "You can also tap an empty spot of the map, then “Move here” (WGS 84); tap a building's dot for its households.",
        move_here: "Move my position here", none_listed: "No household of this building is in the list (widen the radius).", note_wechat: "Opened in WeChat: WeChat maps use GCJ-02; browser location is WGS 84.",
        no_position: "Locate yourself or type a position first.", locating: "Locating…", locate_failed: "Cannot locate: ",
        bad_position: "Type two numbers", households_found: "households", none_found: "No households of yours nearby",
        progress: "Screening progress of my grids", no_campaign: "No open screening campaign",
        screened: "screened", targeted: "to screen", flagged: "recorded far away", saved: "Visit recorded",
        duplicate: "Already recorded for this household; nothing was stored twice",
        queued: "Offline: kept on this phone, sent when online", pending: "to send", route_total: "Total",
        minutes: "min", route_none: "Nothing left to visit", unit: "unit", far: "⚠ recorded far from the building",
        distance: "distance", walk_distance: "walk", loading: "Loading…",
        reveal: "Show full details (give a reason; audited)", reveal_go: "Show",
        reveal_reason: "reason, e.g. phone the head of household", reveal_need: "Give a reason (at least 4 characters)",
        persons: "persons", households_unit: "households",
        per_households: " hh", here_at: "Me:", edit_position: "Change", no_position_yet: "No position yet", shown_all: "{total} in all",
        shown_of: "nearest {count} of {total} within the radius", more: "Show {n} more", campaign: "Campaign",
        campaigns_open: "{n} campaigns open: choose one", visited_at: "Visited at",
        pending_sheet: "Waiting to be sent (kept on this phone, sent when online)",
        cached: "Offline: the list and map as saved at {time}", stop_here: "Start: the building you are at",
        fix_visit: "Correct the result (give a reason; audited)", fix_result: "Correct result",
        fix_reason: "reason, e.g. wrong choice, the flat is vacant", fix_send: "Correct",
        fix_need: "Give a reason (at least 2 characters)", fixed: "Visit result corrected", corrected: "corrected" },
};
const RESULTS = ["normal", "follow_up", "vacant", "moved_out", "refused"];
const RESULT_LABELS = { zh: ["已排查·正常", "已排查·需跟进", "空置房", "已搬离", "拒绝配合"],
                        en: ["Screened, normal", "Screened, needs follow-up", "Vacant", "Moved out", "Refused"] };
const HEALTH = new Set(["home_isolation", "chronic_illness", "disabled"]);
const QUEUE = "gridgov.field.queue";
const POSITION = "gridgov.field.position";
const LAST = "gridgov.field.last";          // sessionStorage: the last answers, for a reload offline
const CAMPAIGN = "gridgov.field.campaign";  // localStorage: the campaign chosen when several are open
const FIRST_ROWS = 20;                      // households listed before "show more"
const { t, esc, api, request } = gridgov;
const $ = (id) => document.getElementById(id);
const state = { pos: null, wgs: null, campaign: null, campaigns: [], nearby: null, household: null, more: false };

const map = L.map("map", { preferCanvas: true, zoomControl: true }).setView([22.6, 114.0], 16);
map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
// The background layers take no taps, so that a tap reaches a building's dot drawn under a footprint loaded later,
// or the map itself (offerPosition).
const grids = L.geoJSON(null, { style: { color: "#1e6fd9", weight: 2, fillOpacity: 0.04 }, interactive: false }).addTo(map);  // blue: not a street (as on the overview)
const streets = L.geoJSON(null, { style: (f) => ({ color: f.properties.car ? "#9e9e9e" : "#d7c29e",
                                                      weight: f.properties.car ? 4 : 2 }), interactive: false }).addTo(map);
const buildings = L.geoJSON(null, { style: { color: "#7a5230", weight: 1, fillColor: "#c8b59a", fillOpacity: 0.5 },
                                    interactive: false }).addTo(map);
const gridLabels = gridgov.areaLabels(map, grids, gridLabel);  // "01 · 第一网格" where it fits
const homes = L.layerGroup().addTo(map);
const routeLine = L.polyline([], { color: "#d32f2f", weight: 4, opacity: 0.8, interactive: false }).addTo(map);
const routeStops = L.layerGroup().addTo(map);  // the route's stops, numbered in visiting order
// "My position" and its radius take no taps: a tap through them reaches the building dot underneath.
const here = L.circleMarker([0, 0], { radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1,
                                      interactive: false });
const ring = L.circle([0, 0], { radius: 200, color: "#1565c0", weight: 1, fill: false, dashArray: "4 4",
                                interactive: false });

function crsNote() {
  const wechat = /MicroMessenger/i.test(navigator.userAgent) ? " " + t("note_wechat") : "";
  const which = state.pos && state.pos.crs === "GCJ-02" ? t("note_gcj") : t("note_wgs");
  $("crs-note").textContent = (state.pos ? which + " " : "") + t("note_tap") + wechat;
}

function setStatus(text) { $("status").textContent = text; }
const fill = (text, values) => text.replace(/\{(\w+)\}/g, (_, k) => String(values[k] ?? ""));

// The last answers of the API, kept for a reload without a connection (sessionStorage: gone with the tab, as the
// login is); `part` is one of grids, campaigns, nearby, buildings, streets.
function keep(part, value) {
  const last = JSON.parse(sessionStorage.getItem(LAST) || "{}");
  last[part] = value;
  last.saved_at = new Date().toISOString();
  try { sessionStorage.setItem(LAST, JSON.stringify(last)); } catch { /* full: the page still works online */ }
}

// Draw what was kept (a reload offline, or the first paint before the answers come): map, progress, list.
function restore() {
  const last = JSON.parse(sessionStorage.getItem(LAST) || "null");
  const saved = JSON.parse(sessionStorage.getItem(POSITION) || "null");
  if (saved) showPosition(saved.x, saved.y, saved.crs);
  if (!last) return false;
  if (last.grids) drawGrids(last.grids);
  if (last.campaigns) showProgress(last.campaigns);
  if (last.nearby) showNearby(last.nearby);
  if (last.buildings) buildings.clearLayers().addData(last.buildings);
  if (last.streets) streets.clearLayers().addData(last.streets);
  const time = new Date(last.saved_at).toLocaleTimeString(gridgov.state.lang === "zh" ? "zh-CN" : "en-GB",
                                                          { hour: "2-digit", minute: "2-digit" });
  if (!navigator.onLine) setStatus(fill(t("cached"), { time }));
  document.body.dataset.cached = "1";
  return true;
}

// The position in the form and on the one-line summary at the top (the form folds away once there is one).
function showPosition(x, y, crs) {
  state.pos = { x: Number(x), y: Number(y), crs };
  $("lon").value = state.pos.x.toFixed(6);
  $("lat").value = state.pos.y.toFixed(6);
  $("crs").value = crs;
  $("where-now").textContent = `${t("here_at")} ${state.pos.y.toFixed(5)}, ${state.pos.x.toFixed(5)} · ${crs === "GCJ-02" ? "GCJ-02" : "WGS 84"}`;
  $("where").open = false;
  crsNote();
}

function setPosition(x, y, crs) {
  showPosition(x, y, crs);
  sessionStorage.setItem(POSITION, JSON.stringify(state.pos));
  return search();
}

function positionParams() {
  return { lon: state.pos.x, lat: state.pos.y, position_crs: state.pos.crs, crs: "EPSG:4326" };
}

async function loadGrids() {
  const data = await api("/api/field/grids?crs=EPSG:4326");
  drawGrids(data);
  keep("grids", data);
}

function drawGrids(data) {
  grids.clearLayers().addData(data);
  gridLabels.draw();
  if (!state.pos && data.features.length) map.fitBounds(grids.getBounds(), { padding: [10, 10] });
}
// "01 · 403户" as on the overview map (the grid's number in its community, its households)
function gridLabel(p) { return `${String(p.code || "").slice(-2)} · ${p.households ?? "–"}${t("per_households")}`; }

async function loadProgress() {
  const campaigns = await api("/api/field/campaigns?status=open");
  showProgress(campaigns);
  keep("campaigns", campaigns);
}

// The open campaigns: with several, a chooser (the choice is kept on the phone); the chosen one's progress.
function showProgress(campaigns) {
  state.campaigns = campaigns;
  const chosen = Number(localStorage.getItem(CAMPAIGN));
  state.campaign = campaigns.find((c) => c.id === chosen) || campaigns[0] || null;
  const box = $("progress");
  if (!state.campaign) { box.innerHTML = `<b>${esc(t("progress"))}</b><p class="note">${esc(t("no_campaign"))}</p>`; return; }
  const c = state.campaign, pct = c.targeted ? (100 * c.screened / c.targeted) : 100;
  Object.assign(box.dataset, { screened: c.screened, targeted: c.targeted, personsScreened: c.persons_screened,
                               personsTargeted: c.persons_targeted, campaign: c.id, campaigns: campaigns.length });
  const which = campaigns.length > 1
    ? `<label class="campaign"><span>${esc(fill(t("campaigns_open"), { n: campaigns.length }))}</span>` +
      `<select id="campaign">${campaigns.map((x) => `<option value="${x.id}"${x.id === c.id ? " selected" : ""}>` +
                                                 `${esc(x.name)}</option>`).join("")}</select></label>`
    : ` · <span id="campaign-name">${esc(c.name)}</span>`;
  box.innerHTML = `<b>${esc(t("progress"))}</b>${which}` +
    `<div class="bar"><i style="width:${pct.toFixed(2)}%"></i></div>` +
    `<div class="figures">${esc(t("screened"))} <b id="screened">${c.screened}</b> / ${esc(t("targeted"))} ` +
    `<b id="targeted">${c.targeted}</b> ${esc(t("households_unit"))} · <b id="coverage">${pct.toFixed(2)}%</b> · ` +
    `<b id="persons-screened">${c.persons_screened}</b> / <b id="persons-targeted">${c.persons_targeted}</b> ` +
    `${esc(t("persons"))}</div>`;
  const select = $("campaign");
  if (select) select.addEventListener("change", () => {
    localStorage.setItem(CAMPAIGN, select.value);
    showProgress(state.campaigns);
    if (state.pos) search().catch(() => {});
  });
}

async function search() {
  if (!state.pos) { setStatus(t("no_position")); return; }
  setStatus(t("loading"));
  const radius = Number($("radius").value), mode = $("mode").value;
  const params = new URLSearchParams({ ...positionParams(), radius, mode, limit: 100, purpose: "网格员走访" });
  if (state.campaign) params.set("campaign_id", state.campaign.id);
  if ($("only-unvisited").checked && state.campaign) params.set("only_unvisited", "true");
  let data;
  try { data = await api("/api/field/nearby?" + params); } catch (error) { setStatus(error.message); return; }
  state.more = false;
  showNearby(data);
  keep("nearby", data);
  delete document.body.dataset.cached;
  document.body.dataset.count = data.count;
  const ll = [data.position[1], data.position[0]];
  loadBuildings(ll, radius).catch(() => {});
}

function showNearby(data) {
  state.nearby = data;
  state.wgs = data.position;
  const ll = [data.position[1], data.position[0]];
  here.setLatLng(ll).addTo(map);
  ring.setLatLng(ll).setRadius(data.radius_m).addTo(map);
  map.setView(ll, Math.max(map.getZoom(), 17));
  drawHomes(data);
  renderList(data);
}

async function loadBuildings(ll, radius) {
  const d = radius / 111000 * 1.2, e = d / Math.cos(ll[0] * Math.PI / 180);
  const bbox = [ll[1] - e, ll[0] - d, ll[1] + e, ll[0] + d].map((v) => v.toFixed(6)).join(",");
  const [b, s] = await Promise.all([api(`/api/layers/buildings?bbox=${bbox}&limit=2000`),
                                   api(`/api/layers/streets?bbox=${bbox}&limit=5000`)]);
  buildings.clearLayers().addData(b);
  streets.clearLayers().addData(s);
  keep("buildings", b);
  keep("streets", s);
}

function drawHomes(data) {
  homes.clearLayers();
  const waiting = pendingIds();
  for (const b of data.buildings) {
    const left = b.unvisited == null ? 0
      : b.unvisited - data.households.filter((h) => h.building_id === b.id && waiting.has(h.id)).length;
    L.circleMarker([b.location[1], b.location[0]], { radius: 7, weight: 2, color: "#fff",
      fillColor: left ? "#ef6c00" : "#2e7d32", fillOpacity: 0.95 })
      .bindTooltip(`${esc(b.name || b.code || "#" + b.id)} · ${b.households}${left ? " / " + left : ""}`)
      .on("click", (e) => { L.DomEvent.stopPropagation(e); openBuilding(b, e.latlng); })
      .addTo(homes);
  }
}

// A tap on a building's dot: a popup with that building's households of the list, each opening its sheet; the
// position stays where it was (issue 19 item 2).
function openBuilding(b, latlng) {
  const mine = (state.nearby?.households || []).filter((h) => h.building_id === b.id);
  const box = document.createElement("div");
  box.className = "building-popup";
  box.dataset.building = b.id;
  box.innerHTML = `<b>${esc(b.name || b.code || "#" + b.id)}</b> · ${b.households} ${esc(t("households_unit"))}` +
    (mine.length ? "" : `<p class="note">${esc(t("none_listed"))}</p>`);
  const list = document.createElement("ul");
  mine.forEach((h) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.id = h.id;
    button.textContent = `${room(h)} ${h.head_name || ""}` + (statusText(h) ? ` · ${statusText(h)}` : "");
    button.addEventListener("click", () => { map.closePopup(); openVisit(h); });
    item.appendChild(button);
    list.appendChild(item);
  });
  box.appendChild(list);
  L.popup({ maxWidth: 260 }).setLatLng(latlng).setContent(box).openOn(map);
}

// A tap on the map elsewhere offers to move the position there (WGS 84, as the map is drawn); nothing moves until
// the worker says so.
function offerPosition(latlng) {
  const box = document.createElement("div");
  box.className = "position-popup";
  const button = document.createElement("button");
  button.type = "button";
  button.id = "move-here";
  button.textContent = t("move_here");
  button.addEventListener("click", () => { map.closePopup(); setPosition(latlng.lng, latlng.lat, "EPSG:4326"); });
  box.appendChild(button);
  L.popup().setLatLng(latlng).setContent(box).openOn(map);
}

function label(l) { return l ? (gridgov.state.lang === "zh" ? l.zh : l.en) : ""; }
// "1单元 0201" in Chinese, "Unit 1 · 0201" in English (issue 19 item 11: "1unit 0201" ran together).
function room(h) { return gridgov.state.lang === "zh" ? `${h.unit}单元 ${h.room}` : `Unit ${h.unit} · ${h.room}`; }
// The households whose visit waits in the queue (of the campaign shown): they say 待上传, not 未走访.
function pendingIds() {
  return new Set(queue().filter((q) => !state.campaign || q.campaign === state.campaign.id).map((q) => q.body.household_id));
}
function pendingOf(h) {
  return queue().find((q) => q.body.household_id === h.id && (!state.campaign || q.campaign === state.campaign.id));
}
function statusCode(h) { return pendingOf(h) ? "pending" : h.status ? h.status.code : ""; }
function statusText(h) {
  return pendingOf(h) ? t("pending") : h.status ? label(h.visit_result) || label(h.status) : "";
}

function renderList(data) {
  const list = $("nearby");
  list.innerHTML = "";
  $("more").hidden = true;
  if (!data.households.length) { setStatus(t("none_found")); return; }
  const total = data.total ?? data.count;
  setStatus(fill(t(total > data.count ? "shown_of" : "shown_all"), { count: data.count, total }));
  $("status").dataset.count = data.count;
  $("status").dataset.total = total;
  const folded = state.more ? [] : data.households.slice(FIRST_ROWS);
  if (folded.length) {
    $("more").textContent = fill(t("more"), { n: folded.length });
    $("more").hidden = false;
  }
  let building = null, shown = 0;
  for (const h of data.households) {
    const hide = !state.more && shown++ >= FIRST_ROWS;
    const metres = data.mode === "walk" ? h.walk_m : h.distance_m;
    if (h.building_id !== building) {
      building = h.building_id;
      const head = document.createElement("li");
      head.className = "building";
      head.dataset.building = h.building_id;
      head.textContent = `${h.building_name || h.building_code || "#" + h.building_id} · ${Math.round(metres)} m`;
      head.hidden = hide;
      list.appendChild(head);
    }
    const item = document.createElement("li");
    item.className = "household";
    item.hidden = hide;
    item.dataset.id = h.id;
    item.dataset.distance = metres;
    item.dataset.status = statusCode(h);
    const tags = h.tags.map((tag) => `<span class="tag${HEALTH.has(tag.code) ? " health" : ""}">${esc(label(tag))}</span>`).join("");
    const status = statusText(h) ? `<span class="state ${esc(statusCode(h))}">${esc(statusText(h))}</span>` : "";
    item.innerHTML = `<span class="who"><span class="room">${esc(room(h))}</span> ${esc(h.head_name || "")}` +
      ` <small>${esc(h.head_phone || "")}</small></span>${status}` + (tags ? `<span class="tags">${tags}</span>` : "");
    item.addEventListener("click", () => openVisit(h));
    list.appendChild(item);
  }
}

function openVisit(h) {
  state.household = h;
  $("visit").dataset.household = h.id;  // for the ledger editor (field_ledger.js)
  $("visit-who").textContent = `${h.building_name || h.building_code} · ${room(h)} · ${h.head_name || ""}`;
  $("visit-error").textContent = "";
  $("visit-note").value = "";
  $("reveal").open = false;
  $("reveal-out").textContent = "";
  $("reveal-reason").placeholder = t("reveal_reason");
  const waiting = pendingOf(h);
  $("visit").dataset.visitable = state.campaign && h.status && h.status.code === "unvisited" && !waiting ? "1" : "0";
  // a visited household's sheet says what was recorded and when; a waiting one that it waits to be sent
  const when = (iso) => new Date(iso).toLocaleString(gridgov.state.lang === "zh" ? "zh-CN" : "en-GB",
                                                    { dateStyle: "short", timeStyle: "short" });
  const result = (code) => RESULT_LABELS[gridgov.state.lang][RESULTS.indexOf(code)] || code;
  const done = $("visit-done");
  done.dataset.status = statusCode(h);
  if (waiting) done.textContent = `${t("pending_sheet")}: ${result(waiting.body.result)} · ${when(waiting.body.visited_at)}`;
  else if (h.status && h.status.code === "visited") {
    done.textContent = `${label(h.visit_result) || label(h.status)}` + (h.visited_at ? ` · ${t("visited_at")} ${when(h.visited_at)}` : "");
  } else done.textContent = "";
  done.hidden = !done.textContent;
  // a visit recorded by mistake is corrected with a reason (kept beside it: issue 19 item 11)
  const fixable = Boolean(state.campaign && !waiting && h.status && h.status.code === "visited");
  $("visit-fix").hidden = !fixable;
  $("visit-fix").open = false;
  $("fix-reason").value = "";
  $("fix-out").textContent = "";
  if (fixable && h.visit_result) $("fix-result").value = h.visit_result.code;
  $("visit").hidden = false;
}

async function reveal() {
  const reason = $("reveal-reason").value.trim();
  if (reason.length < 4) { $("reveal-out").textContent = t("reveal_need"); return; }
  try {
    const full = (await request("POST", `/api/field/households/${state.household.id}/reveal`, { reason })).data;
    $("reveal-out").textContent = [full.head_name, full.head_id_number, full.head_phone].filter(Boolean).join(" · ");
  } catch (error) { $("reveal-out").textContent = error.message; }
}

async function correctVisit() {
  const reason = $("fix-reason").value.trim();
  if (reason.length < 2) { $("fix-out").textContent = t("fix_need"); return; }
  const h = state.household;
  try {
    await request("POST", `/api/field/campaigns/${state.campaign.id}/visits/${h.id}/corrections`,
                  { result: $("fix-result").value, reason });
  } catch (error) { $("fix-out").textContent = error.message; return; }
  $("visit").hidden = true;
  await loadProgress();
  await search();
  setStatus(t("fixed"));
}

function queue() { return JSON.parse(localStorage.getItem(QUEUE) || "[]"); }
function showQueue() {
  const n = queue().length;
  $("queued").hidden = n === 0;
  $("queued").textContent = `${n} ${t("pending")}`;
}

async function sendVisit(item) {
  try {
    await request("POST", `/api/field/campaigns/${item.campaign}/visits`, item.body);
    return "saved";
  } catch (error) {
    if (error instanceof gridgov.ApiError) return error.status === 409 ? "duplicate" : error.message;
    return "offline";
  }
}

async function saveVisit(event) {
  event.preventDefault();
  const h = state.household;
  if (!state.campaign || !h.status || h.status.code !== "unvisited" || pendingOf(h)) { $("visit").hidden = true; return; }
  const item = { campaign: state.campaign.id, body: { household_id: h.id, result: $("visit-result").value,
    note: $("visit-note").value || null, lon: state.pos.x, lat: state.pos.y, crs: state.pos.crs,
    visited_at: new Date().toISOString() } };
  const outcome = navigator.onLine ? await sendVisit(item) : "offline";
  if (outcome === "offline") {
    localStorage.setItem(QUEUE, JSON.stringify([...queue(), item]));
    showQueue();
  } else if (outcome !== "saved" && outcome !== "duplicate") {
    $("visit-error").textContent = outcome;
    return;
  }
  $("visit").hidden = true;
  if (outcome === "offline") { renderList(state.nearby); drawHomes(state.nearby); }  // 待上传 at once
  setStatus(t(outcome === "offline" ? "queued" : outcome));
  if (outcome !== "offline") { await loadProgress(); await search(); setStatus(t(outcome)); }
}

async function flushQueue() {
  const waiting = queue();
  if (!waiting.length || !navigator.onLine) return;  // offline: the 'online' event sends them (network())
  const left = [];
  for (const item of waiting) { if ((await sendVisit(item)) === "offline") left.push(item); }
  localStorage.setItem(QUEUE, JSON.stringify(left));
  showQueue();
  if (left.length < waiting.length) { await loadProgress().catch(() => {}); if (state.pos) await search(); }
}

// The route's stops on the map as numbered circles (1 = first to visit), the same numbers as in the list.
function drawStops(stops) {
  routeStops.clearLayers();
  for (const s of stops) {
    L.marker([s.location[1], s.location[0]], { interactive: false, keyboard: false,
      icon: L.divIcon({ className: "stop-icon", html: `<i class="stop">${s.order}</i>`, iconSize: [22, 22] }) })
      .addTo(routeStops);
  }
}

async function planRoute() {
  if (!state.pos) { setStatus(t("no_position")); return; }
  const box = $("route-info");
  $("route-panel").hidden = false;
  box.textContent = t("loading");
  try {
    const body = { ...positionParams(), nearest: 10, ...(state.campaign ? { campaign_id: state.campaign.id } : {}) };
    state.plan = (await request("POST", "/api/field/route", body)).data;
    showRoute();
  } catch (error) {
    state.plan = null;
    routeLine.setLatLngs([]);
    routeStops.clearLayers();
    box.textContent = error.status === 422 ? t("route_none") + " (" + error.message + ")" : error.message;
  }
}

// The planned route (state.plan) on the map and as a numbered list, in the page's language.
function showRoute() {
  const plan = state.plan;
  if (!plan) return;
  routeLine.setLatLngs(plan.geometry.coordinates.map(([x, y]) => [y, x]));
  drawStops(plan.stops);
  $("route-info").innerHTML = `<b>${esc(t("route_total"))}: <span id="route-length">${Math.round(plan.length_m)}</span> m · ` +
      `${Math.ceil(plan.duration_s / 60)} ${esc(t("minutes"))}</b><ol class="stops">` +
      plan.stops.map((s) => `<li data-building="${s.building_id}" data-order="${s.order}"><i class="stop">${s.order}</i>` +
                             `${esc(s.name || s.code)} · ${s.household_ids.length} ${esc(t("households_unit"))} · ` +
                             `${Math.round(s.arrival_m)} m${s.here ? ` · ${esc(t("stop_here"))}` : ""}</li>`).join("") + "</ol>";
  document.body.dataset.route = plan.stops.length;
}

function typedPosition() {
  const x = Number($("lon").value), y = Number($("lat").value);
  if (!$("lon").value || !$("lat").value || !Number.isFinite(x) || !Number.isFinite(y)) { setStatus(t("bad_position")); return; }
  setPosition(x, y, $("crs").value);
}

function locate() {
  if (!navigator.geolocation) { setStatus(t("locate_failed") + "geolocation"); return; }
  setStatus(t("locating"));
  navigator.geolocation.getCurrentPosition(
    (p) => setPosition(p.coords.longitude, p.coords.latitude, "EPSG:4326"),
    (error) => setStatus(t("locate_failed") + error.message), { enableHighAccuracy: true, timeout: 15000 });
}

function network(event) {
  $("net").textContent = t(navigator.onLine ? "online" : "offline");
  $("net").className = "badge" + (navigator.onLine ? "" : " off");
  if (!event || event.type !== "online" || !sessionStorage.getItem("gridgov.token")) return;
  if (!document.body.dataset.ready) location.reload();  // the page was opened offline: load its data now
  else flushQueue().catch(() => {});
}

function wire() {
  $("locate").addEventListener("click", locate);
  $("set-position").addEventListener("click", typedPosition);
  $("refresh").addEventListener("click", () => search());
  $("route").addEventListener("click", planRoute);
  for (const id of ["radius", "mode", "only-unvisited"]) $(id).addEventListener("change", () => search());
  $("more").addEventListener("click", () => { state.more = true; renderList(state.nearby); });
  $("visit").addEventListener("submit", saveVisit);
  $("reveal-go").addEventListener("click", reveal);
  $("fix-send").addEventListener("click", correctVisit);
  $("visit-cancel").addEventListener("click", () => { $("visit").hidden = true; });
  map.on("click", (e) => offerPosition(e.latlng));
  window.addEventListener("gridgov:ledger-changed", () => {  // a correction (field_ledger.js): new counts and heads
    loadProgress().catch(() => {});
    if (state.pos) search().catch(() => {});
  });
  $("logout").addEventListener("click", () => sessionStorage.removeItem(LAST));
  window.addEventListener("online", network);
  window.addEventListener("offline", network);
}

function resultOptions() {
  const options = RESULTS.map((r, i) => `<option value="${r}">${esc(RESULT_LABELS[gridgov.state.lang][i])}</option>`).join("");
  $("visit-result").innerHTML = options;
  $("fix-result").innerHTML = options;
}

async function start() {
  resultOptions();
  showRoute();  // after a language change
  network();
  crsNote();
  showQueue();
  await loadGrids().catch(() => {});
  await loadProgress();
  const saved = JSON.parse(sessionStorage.getItem(POSITION) || "null");
  if (saved) await setPosition(saved.x, saved.y, saved.crs);
  else { $("where").open = true; $("where-now").textContent = t("no_position_yet"); }
  flushQueue().catch(() => {});
}

if ("serviceWorker" in navigator) navigator.serviceWorker.register("/field/sw.js").catch(() => {});
wire();
gridgov.setup(LABELS, start);
network();
showQueue();
resultOptions();
// what was kept, at once (offline: all there is); only with a login, and forgotten at logout
if (!(gridgov.token() && restore()) && !state.pos) $("where").open = true;
window.field = { map, homes };  // for the page tests: where the dots are drawn
