// The field page's patrol recorder (巡查记录, issue 17 §2): start a patrol in one of my grids, record the GPS track
// (browser geolocation: WGS 84, sent as datum EPSG:4326), check in at the nearest building, end it and show the
// scores (lanes covered, buildings passed, distance, time, gaps, a datum warning).
// Everything is queued in localStorage ("gridgov.patrol.queue") and sent in order when the phone is online, as the
// visits of field.js are: a start carries the phone's client_ref (sent twice it makes one patrol), fixes are
// stored once per instant, a check-in once per building, an end twice changes nothing: resending counts nothing twice.
// Kept apart from field.js; registered with gridgov.part() before field.js calls gridgov.setup().
"use strict";
(() => {
  const LABELS = {
    zh: { patrol: "巡查", patrol_grid: "网格", patrol_start: "开始巡查", patrol_end: "结束巡查",
          patrol_checkin: "在最近楼栋签到", patrol_recording: "记录中", patrol_fixes: "个定位点",
          patrol_waiting: "待上传", patrol_idle: "未在巡查", patrol_done: "巡查已结束", patrol_lanes: "巷道覆盖",
          patrol_buildings: "经过楼栋", patrol_distance: "距离", patrol_time: "用时", patrol_gaps: "信号中断",
          patrol_datum: "坐标系可疑：定位点更符合 GCJ-02，已按其计分", patrol_checked: "已签到：",
          patrol_no_building: "附近 100 米内没有楼栋", patrol_no_fix: "尚未定位", minutes: "分钟" },
    en: { patrol: "Patrol", patrol_grid: "Grid", patrol_start: "Start patrol", patrol_end: "End patrol",
          patrol_checkin: "Check in at the nearest building", patrol_recording: "recording", patrol_fixes: "fixes",
          patrol_waiting: "to send", patrol_idle: "not on patrol", patrol_done: "Patrol ended",
          patrol_lanes: "Lanes covered", patrol_buildings: "Buildings passed", patrol_distance: "Distance",
          patrol_time: "Time", patrol_gaps: "Signal lost",
          patrol_datum: "Datum suspect: the fixes fit GCJ-02 and were scored in it", patrol_checked: "Checked in: ",
          patrol_no_building: "No building within 100 m", patrol_no_fix: "No position yet", minutes: "min" },
  };
  const QUEUE = "gridgov.patrol.queue", CURRENT = "gridgov.patrol.current", IDS = "gridgov.patrol.ids";
  const BATCH = 30, FLUSH_MS = 15000;
  const { t, esc, api, request } = gridgov;
  const $ = (id) => document.getElementById(id);
  const load = (key, empty) => JSON.parse(localStorage.getItem(key) || JSON.stringify(empty));
  const save = (key, value) => localStorage.setItem(key, JSON.stringify(value));
  const state = { watch: null, buffer: [], last: null, count: 0, timer: null, flushing: false };

  function current() { return load(CURRENT, null); }  // { ref, grid } of the patrol being recorded
  function enqueue(item) { save(QUEUE, [...load(QUEUE, []), item]); show(); }

  function show() {
    const on = current(), waiting = load(QUEUE, []).length + state.buffer.length;
    $("patrol-start").hidden = !!on;
    $("patrol-end").hidden = !on;
    $("patrol-checkin").disabled = !on;
    $("patrol-grid").disabled = !!on;
    $("patrol-status").textContent = on ? `${t("patrol_recording")} · ${state.count} ${t("patrol_fixes")}` +
      (waiting ? ` · ${waiting} ${t("patrol_waiting")}` : "") : t("patrol_idle");
    document.body.dataset.patrol = on ? "recording" : "idle";
  }

  function onFix(p) {
    const fix = { at: new Date(p.timestamp).toISOString(), lon: p.coords.longitude, lat: p.coords.latitude,
                  accuracy_m: Number.isFinite(p.coords.accuracy) ? Math.min(p.coords.accuracy, 100000) : null };
    state.last = fix;
    state.buffer.push(fix);
    state.count += 1;
    if (state.buffer.length >= BATCH) moveBuffer();
    show();
  }

  function moveBuffer() {
    const on = current();
    if (!on || !state.buffer.length) return;
    enqueue({ kind: "fixes", ref: on.ref, body: { fixes: state.buffer } });
    state.buffer = [];
  }

  function record() {
    if (!navigator.geolocation || state.watch !== null) return;
    state.watch = navigator.geolocation.watchPosition(onFix, () => {}, { enableHighAccuracy: true, maximumAge: 0 });
    state.timer = setInterval(() => { moveBuffer(); flush().catch(() => {}); }, FLUSH_MS);
  }

  function stop() {
    if (state.watch !== null) navigator.geolocation.clearWatch(state.watch);
    clearInterval(state.timer);
    state.watch = null;
  }

  async function startPatrol() {
    const grid = Number($("patrol-grid").value);
    if (!grid) return;
    const ref = "p" + Date.now().toString(36) + Math.random().toString(36).slice(2, 8);
    save(CURRENT, { ref, grid });
    state.count = 0;
    enqueue({ kind: "start", ref, body: { grid_id: grid, datum: "EPSG:4326", client_ref: ref,
                                          started_at: new Date().toISOString() } });
    record();
    await flush();
  }

  async function endPatrol() {
    const on = current();
    if (!on) return;
    moveBuffer();
    stop();
    enqueue({ kind: "end", ref: on.ref, body: { ended_at: new Date().toISOString() } });
    localStorage.removeItem(CURRENT);
    show();
    await flush();
  }

  async function checkIn() {
    const on = current();
    if (!on || !state.last) { $("patrol-message").textContent = t("patrol_no_fix"); return; }
    const { lon, lat } = state.last;
    const d = 100 / 111000, e = d / Math.cos(lat * Math.PI / 180);
    const bbox = [lon - e, lat - d, lon + e, lat + d].map((v) => v.toFixed(6)).join(",");
    const found = await api(`/api/layers/buildings?bbox=${bbox}&limit=200`);
    const near = (found.features || []).map((f) => {
      const [x, y] = centre(f.geometry);
      return { f, m: Math.hypot((x - lon) / e, (y - lat) / d) * 100 };
    }).sort((a, b) => a.m - b.m)[0];
    if (!near) { $("patrol-message").textContent = t("patrol_no_building"); return; }
    moveBuffer();
    enqueue({ kind: "checkin", ref: on.ref, body: { kind: "building", target_id: near.f.id ?? near.f.properties.id,
                                                     lon, lat, datum: "EPSG:4326", at: state.last.at } });
    await flush();
  }

  function centre(geometry) {  // the mean of the outer ring's vertices (enough to pick the nearest building)
    let ring = geometry.coordinates;
    while (Array.isArray(ring[0][0])) ring = ring[0];
    const n = ring.length;
    return [ring.reduce((s, p) => s + p[0], 0) / n, ring.reduce((s, p) => s + p[1], 0) / n];
  }

  async function send(item, ids) {
    if (item.kind === "start") {
      const made = (await request("POST", "/api/patrols", item.body)).data;
      ids[item.ref] = made.id;
      return null;
    }
    const id = ids[item.ref];
    if (!id) return null;  // its start was refused: nothing to attach to
    const path = { fixes: "fixes", checkin: "checkins", end: "end" }[item.kind];
    return (await request("POST", `/api/patrols/${id}/${path}`, item.body)).data;
  }

  async function flush() {
    if (state.flushing || !sessionStorage.getItem("gridgov.token")) return;
    state.flushing = true;
    try {
      const ids = load(IDS, {});
      let waiting = load(QUEUE, []);
      while (waiting.length) {
        const item = waiting[0];
        try {
          const answer = await send(item, ids);
          if (item.kind === "end" && answer) showScores(answer);
          if (item.kind === "checkin" && answer) $("patrol-message").textContent = t("patrol_checked") + (answer.name || "");
        } catch (error) {
          if (!(error instanceof gridgov.ApiError) || error.status === 0) break;  // offline: try again later
          $("patrol-message").textContent = error.message;  // refused: say why, drop it
        }
        save(IDS, ids);
        waiting = load(QUEUE, []).slice(1);
        save(QUEUE, waiting);
      }
    } finally {
      state.flushing = false;
      show();
    }
  }

  function showScores(r) {
    const s = r.scores || {}, lanes = s.lanes || {}, b = s.buildings || {};
    const pct = (v) => (v === null || v === undefined ? "–" : `${Math.round(v * 100)}%`);
    $("patrol-scores").innerHTML = `<b>${esc(t("patrol_done"))}</b><ul>` +
      `<li>${esc(t("patrol_lanes"))}: <span id="patrol-lanes">${lanes.covered ?? 0}/${lanes.total ?? 0}</span> (${pct(lanes.share)})</li>` +
      `<li>${esc(t("patrol_buildings"))}: ${b.passed ?? 0}/${b.total ?? 0}</li>` +
      `<li>${esc(t("patrol_distance"))}: ${Math.round(s.distance_m || 0)} m</li>` +
      `<li>${esc(t("patrol_time"))}: ${Math.round((s.duration_s || 0) / 60)} ${esc(t("minutes"))}</li>` +
      `<li>${esc(t("patrol_gaps"))}: ${(s.gaps || []).length}</li></ul>` +
      (r.datum_suspect ? `<p class="warn">${esc(t("patrol_datum"))}</p>` : "");
    document.body.dataset.patrolEnded = String(r.id);
  }

  async function start() {
    try {
      const grids = await api("/api/field/grids?crs=EPSG:4326");
      $("patrol-grid").innerHTML = grids.features.map((f) =>
        `<option value="${f.properties.id}">${esc(f.properties.name || f.properties.code)}</option>`).join("");
    } catch (error) { $("patrol-message").textContent = error.message; }
    if (current()) record();  // the page was reloaded while recording: go on
    show();
    flush().catch(() => {});
  }

  $("patrol-start").addEventListener("click", () => startPatrol().catch((e) => { $("patrol-message").textContent = e.message; }));
  $("patrol-end").addEventListener("click", () => endPatrol().catch((e) => { $("patrol-message").textContent = e.message; }));
  $("patrol-checkin").addEventListener("click", () => checkIn().catch((e) => { $("patrol-message").textContent = e.message; }));
  window.addEventListener("online", () => flush().catch(() => {}));
  gridgov.part(LABELS, start);
})();
