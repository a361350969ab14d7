// gridgov field page (网格员外勤) for phones: where am I, who lives around me, record a visit, my grid's progress,
// the walking route to the households left. Data from /api/field in EPSG:4326 for the map; the position is sent in
// the coordinate system it was taken in (browser geolocation: WGS 84; WeChat / Amap / Tencent: GCJ-02).
// Visits recorded without a connection wait in localStorage and are sent when the phone is back online (a visit
// already stored answers 409, so sending twice records nothing twice).
"use strict";
const LABELS = {
  zh: { title: "网格员外勤", locate: "定位我", online: "在线", offline: "离线", lon: "经度 x", lat: "纬度 y",
        crs: "坐标系", crs_wgs: "WGS 84（GPS、浏览器定位）", crs_gcj: "GCJ-02（微信、高德、腾讯）",
        set_position: "设为我的位置", radius: "范围", mode: "距离", straight: "直线", walk: "步行",
        only_unvisited: "只看未走访", refresh: "刷新附近住户", route: "规划走访路线", nearby: "附近住户",
        record_visit: "登记走访", result: "结果", note: "备注", save: "保存", cancel: "取消",
        note_wgs: "当前位置为 WGS 84 坐标（浏览器/GPS 定位）。", note_gcj: "当前位置为 GCJ-02 坐标（微信、高德、腾讯地图）。",
        note_tap: "也可在地图上点选位置（WGS 84）。", note_wechat: "在微信中打开：微信地图坐标为 GCJ-02，浏览器定位为 WGS 84。",
        no_position: "请先定位或输入位置。", locating: "正在定位…", locate_failed: "无法定位：", bad_position: "请输入两个数字",
        households_found: "户", none_found: "附近没有您负责的住户", progress: "我的网格排查进度",
        no_campaign: "当前没有进行中的排查任务", screened: "已排查", targeted: "应排查", flagged: "远距离登记",
        saved: "已登记走访", duplicate: "该户已登记过，未重复记录", queued: "离线：已暂存，联网后自动上传",
        pending: "待上传", route_total: "全程", minutes: "分钟", route_none: "没有需要走访的住户", unit: "单元",
        far: "⚠ 登记位置距楼栋较远", distance: "距离", walk_distance: "步行", loading: "加载中…",
        reveal: "查看完整信息（需说明理由，将记录审计）", reveal_go: "查看", reveal_reason: "理由，如：电话联系户主",
        reveal_need: "请填写理由（至少 4 个字）", persons: "人", households_unit: "户" },
  en: { title: "Field work", locate: "Locate me", online: "online", offline: "offline", lon: "Longitude x",
        lat: "Latitude y", crs: "Coordinates", crs_wgs: "WGS 84 (GPS, browser location)",
        crs_gcj: "GCJ-02 (WeChat, Amap, Tencent)", set_position: "Use as my position", radius: "Radius",
        mode: "Distance", straight: "straight line", walk: "walking", only_unvisited: "only not yet visited",
        refresh: "Refresh nearby", route: "Plan my route", nearby: "Households nearby", record_visit: "Record a visit",
        result: "Result", note: "Note", save: "Save", cancel: "Cancel",
        note_wgs: "The position is WGS 84 (browser / GPS location).", note_gcj: "The position is GCJ-02 (WeChat, Amap, Tencent maps).",
        note_tap: "You can also tap the map (WGS 84).", note_wechat: "Opened in WeChat: WeChat maps use GCJ-02; browser location is WGS 84.",
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
        persons: "persons", households_unit: "households" },
};
const RESULTS = ["normal", "follow_up", "vacant", "moved_out", "refused"];
const RESULT_LABELS = { zh: ["已排查·正常", "已排查·需跟进", "空置房", "已搬离", "拒绝配合"],
                        en: ["Screened, normal", "Screened, needs follow-up", "Vacant", "Moved out", "Refused"] };
const HEALTH = new Set(["home_isolation", "chronic_illness", "disabled"]);
const QUEUE = "gridgov.field.queue";
const POSITION = "gridgov.field.position";
const { t, esc, api, request } = gridgov;
const $ = (id) => document.getElementById(id);
const state = { pos: null, wgs: null, campaign: null, nearby: null, household: null };

const map = L.map("map", { preferCanvas: true, zoomControl: true }).setView([22.6, 114.0], 16);
map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
const grids = L.geoJSON(null, { style: { color: "#1f3b5a", weight: 2, fillOpacity: 0.04 } }).addTo(map);
const streets = L.geoJSON(null, { style: (f) => ({ color: f.properties.car ? "#9e9e9e" : "#d7c29e",
                                                      weight: f.properties.car ? 4 : 2 }) }).addTo(map);
const buildings = L.geoJSON(null, { style: { color: "#7a5230", weight: 1, fillColor: "#c8b59a", fillOpacity: 0.5 } }).addTo(map);
const homes = L.layerGroup().addTo(map);
const routeLine = L.polyline([], { color: "#d32f2f", weight: 4, opacity: 0.8 }).addTo(map);
const here = L.circleMarker([0, 0], { radius: 8, color: "#fff", weight: 3, fillColor: "#1565c0", fillOpacity: 1 });
const ring = L.circle([0, 0], { radius: 200, color: "#1565c0", weight: 1, fill: false, dashArray: "4 4" });

function crsNote() {
  const wechat = /MicroMessenger/i.test(navigator.userAgent) ? " " + t("note_wechat") : "";
  const which = state.pos && state.pos.crs === "GCJ-02" ? t("note_gcj") : t("note_wgs");
  $("crs-note").textContent = (state.pos ? which + " " : "") + t("note_tap") + wechat;
}

function setStatus(text) { $("status").textContent = text; }

function setPosition(x, y, crs) {
  state.pos = { x: Number(x), y: Number(y), crs };
  sessionStorage.setItem(POSITION, JSON.stringify(state.pos));
  $("lon").value = state.pos.x.toFixed(6);
  $("lat").value = state.pos.y.toFixed(6);
  $("crs").value = crs;
  crsNote();
  return search();
}

function positionParams() {
  return { lon: state.pos.x, lat: state.pos.y, position_crs: state.pos.crs, crs: "EPSG:4326" };
}

async function loadGrids() {
  const data = await api("/api/field/grids?crs=EPSG:4326");
  grids.clearLayers().addData(data);
  if (!state.pos && data.features.length) map.fitBounds(grids.getBounds(), { padding: [10, 10] });
}

async function loadProgress() {
  const campaigns = await api("/api/field/campaigns?status=open");
  state.campaign = campaigns[0] || null;
  const box = $("progress");
  if (!state.campaign) { box.innerHTML = `<b>${esc(t("progress"))}</b><p class="note">${esc(t("no_campaign"))}</p>`; return; }
  const c = state.campaign, pct = c.targeted ? (100 * c.screened / c.targeted) : 100;
  Object.assign(box.dataset, { screened: c.screened, targeted: c.targeted, personsScreened: c.persons_screened,
                               personsTargeted: c.persons_targeted });
  box.innerHTML = `<b>${esc(t("progress"))}</b> · ${esc(c.name)}` +
    `<div class="bar"><i style="width:${pct.toFixed(2)}%"></i></div>` +
    `<div class="figures">${esc(t("screened"))} <b id="screened">${c.screened}</b> / ${esc(t("targeted"))} ` +
    `<b id="targeted">${c.targeted}</b> ${esc(t("households_unit"))} · <b id="coverage">${pct.toFixed(2)}%</b></div>` +
    `<div class="figures">${esc(t("screened"))} <b id="persons-screened">${c.persons_screened}</b> / ` +
    `${esc(t("targeted"))} <b id="persons-targeted">${c.persons_targeted}</b> ${esc(t("persons"))}</div>`;
}

async function search() {
  if (!state.pos) { setStatus(t("no_position")); return; }
  setStatus(t("loading"));
  const radius = Number($("radius").value), mode = $("mode").value;
  const params = new URLSearchParams({ ...positionParams(), radius, mode, limit: 100, purpose: "网格员走访" });
  if ($("only-unvisited").checked && state.campaign) params.set("only_unvisited", "true");
  let data;
  try { data = await api("/api/field/nearby?" + params); } catch (error) { setStatus(error.message); return; }
  state.nearby = data;
  state.wgs = data.position;
  const ll = [data.position[1], data.position[0]];
  here.setLatLng(ll).addTo(map);
  ring.setLatLng(ll).setRadius(radius).addTo(map);
  map.setView(ll, Math.max(map.getZoom(), 17));
  drawHomes(data);
  renderList(data);
  document.body.dataset.count = data.count;
  loadBuildings(ll, radius).catch(() => {});
}

async function loadBuildings(ll, radius) {
  const d = radius / 111000 * 1.2, e = d / Math.cos(ll[0] * Math.PI / 180);
  const bbox = [ll[1] - e, ll[0] - d, ll[1] + e, ll[0] + d].map((v) => v.toFixed(6)).join(",");
  const [b, s] = await Promise.all([api(`/api/layers/buildings?bbox=${bbox}&limit=2000`),
                                   api(`/api/layers/streets?bbox=${bbox}&limit=5000`)]);
  buildings.clearLayers().addData(b);
  streets.clearLayers().addData(s);
}

function drawHomes(data) {
  homes.clearLayers();
  for (const b of data.buildings) {
    const left = b.unvisited ?? 0;
    L.circleMarker([b.location[1], b.location[0]], { radius: 7, weight: 2, color: "#fff",
      fillColor: left ? "#ef6c00" : "#2e7d32", fillOpacity: 0.95 })
      .bindTooltip(`${esc(b.name || b.code || "#" + b.id)} · ${b.households}${left ? " / " + left : ""}`)
      .on("click", () => document.querySelector(`li[data-building="${b.id}"]`)?.scrollIntoView({ behavior: "smooth" }))
      .addTo(homes);
  }
}

function label(l) { return l ? (gridgov.state.lang === "zh" ? l.zh : l.en) : ""; }

function renderList(data) {
  const list = $("nearby");
  list.innerHTML = "";
  if (!data.households.length) { setStatus(t("none_found")); return; }
  setStatus(`${data.count} ${t("households_found")}`);
  let building = null;
  for (const h of data.households) {
    const metres = data.mode === "walk" ? h.walk_m : h.distance_m;
    if (h.building_id !== building) {
      building = h.building_id;
      const head = document.createElement("li");
      head.className = "building";
      head.dataset.building = h.building_id;
      head.textContent = `${h.building_name || h.building_code || "#" + h.building_id} · ${Math.round(metres)} m`;
      list.appendChild(head);
    }
    const item = document.createElement("li");
    item.className = "household";
    item.dataset.id = h.id;
    item.dataset.distance = metres;
    item.dataset.status = h.status ? h.status.code : "";
    const tags = h.tags.map((tag) => `<span class="tag${HEALTH.has(tag.code) ? " health" : ""}">${esc(label(tag))}</span>`).join("");
    const status = h.status ? `<span class="state ${esc(h.status.code)}">${esc(label(h.visit_result) || label(h.status))}</span>` : "";
    item.innerHTML = `<span><span class="room">${esc(h.unit)}${esc(t("unit"))} ${esc(h.room)}</span> ${esc(h.head_name || "")}` +
      ` <small>${esc(h.head_phone || "")}</small></span><span class="dist">${Math.round(metres)} m ${status}</span>` +
      `<span class="tags">${tags}</span>`;
    item.addEventListener("click", () => openVisit(h));
    list.appendChild(item);
  }
}

function openVisit(h) {
  state.household = h;
  $("visit").dataset.household = h.id;  // for the ledger editor (field_ledger.js)
  $("visit-who").textContent = `${h.building_name || h.building_code} · ${h.unit}${t("unit")} ${h.room} · ${h.head_name || ""}`;
  $("visit-error").textContent = "";
  $("visit-note").value = "";
  $("reveal").open = false;
  $("reveal-out").textContent = "";
  $("reveal-reason").placeholder = t("reveal_reason");
  $("visit").dataset.visitable = state.campaign && h.status && h.status.code === "unvisited" ? "1" : "0";
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
  if (!state.campaign || !h.status || h.status.code !== "unvisited") { $("visit").hidden = true; return; }
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
  setStatus(t(outcome === "offline" ? "queued" : outcome));
  if (outcome !== "offline") { await loadProgress(); await search(); setStatus(t(outcome)); }
}

async function flushQueue() {
  const waiting = queue();
  if (!waiting.length) return;
  const left = [];
  for (const item of waiting) { if ((await sendVisit(item)) === "offline") left.push(item); }
  localStorage.setItem(QUEUE, JSON.stringify(left));
  showQueue();
  if (left.length < waiting.length) { await loadProgress().catch(() => {}); if (state.pos) await search(); }
}

async function planRoute() {
  if (!state.pos) { setStatus(t("no_position")); return; }
  const box = $("route-info");
  box.textContent = t("loading");
  try {
    const plan = (await request("POST", "/api/field/route", { ...positionParams(), nearest: 10 })).data;
    routeLine.setLatLngs(plan.geometry.coordinates.map(([x, y]) => [y, x]));
    box.innerHTML = `<b>${esc(t("route_total"))}: <span id="route-length">${Math.round(plan.length_m)}</span> m · ` +
      `${Math.ceil(plan.duration_s / 60)} ${esc(t("minutes"))}</b><ol>` +
      plan.stops.map((s) => `<li data-building="${s.building_id}">${esc(s.name || s.code)} · ${s.household_ids.length} ` +
                             `${esc(t("households_found"))} · ${Math.round(s.arrival_m)} m</li>`).join("") + "</ol>";
    document.body.dataset.route = plan.stops.length;
  } catch (error) {
    routeLine.setLatLngs([]);
    box.textContent = error.status === 422 ? t("route_none") + " (" + error.message + ")" : error.message;
  }
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
  $("visit").addEventListener("submit", saveVisit);
  $("reveal-go").addEventListener("click", reveal);
  $("visit-cancel").addEventListener("click", () => { $("visit").hidden = true; });
  map.on("click", (e) => setPosition(e.latlng.lng, e.latlng.lat, "EPSG:4326"));
  window.addEventListener("gridgov:ledger-changed", () => {  // a correction (field_ledger.js): new counts and heads
    loadProgress().catch(() => {});
    if (state.pos) search().catch(() => {});
  });
  window.addEventListener("online", network);
  window.addEventListener("offline", network);
}

async function start() {
  $("visit-result").innerHTML = RESULTS.map((r, i) => `<option value="${r}">${esc(RESULT_LABELS[gridgov.state.lang][i])}</option>`).join("");
  network();
  crsNote();
  showQueue();
  await loadGrids().catch(() => {});
  await loadProgress();
  const saved = JSON.parse(sessionStorage.getItem(POSITION) || "null");
  if (saved) await setPosition(saved.x, saved.y, saved.crs);
  flushQueue().catch(() => {});
}

if ("serviceWorker" in navigator) navigator.serviceWorker.register("/field/sw.js").catch(() => {});
wire();
gridgov.setup(LABELS, start);
network();
showQueue();
