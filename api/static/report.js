// gridgov residents' pages, no account: /report (问题上报: category, position, description, optional contact →
// a tracking code) and /report/track (进度查询: the steps of a case by its code, no personal data). Chinese first,
// English as secondary text. Positions are sent with their CRS named: browser geolocation and taps on this map
// (no basemap, plain Web Mercator of WGS 84) are both EPSG:4326.
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const esc = gridgov.esc;
  const CRS = "EPSG:4326";
  const bilingual = (zh, en) => `${esc(zh)}${en ? ` <small lang="en">${esc(en)}</small>` : ""}`;
  const when = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit",
                                                  day: "2-digit", hour: "2-digit", minute: "2-digit", hour12: false });
  const fmt = (iso) => (iso ? when.format(new Date(iso)) : "");

  // What the resident is told for an answer of the API that is not a success: [Chinese, English].
  function explain(status, body, fallbackEn) {
    const loc = (body.errors || []).map((e) => e.loc.join("."));
    const about = (name) => body.field === name || loc.some((l) => l.endsWith(name));
    if (status === 0) return ["网络连接失败，请检查网络后重试。", "No connection: check the network and try again."];
    if (status === 429) return ["提交太频繁了，请一小时后再试，或直接致电社区工作站。",
                                "Too many reports from here: please try again in an hour, or call the community office."];
    if (status === 404) return ["没有找到这个查询码，请核对（10 位字母和数字，不含 0、O、1、I）。",
                                "No report has this code: check it (10 letters and digits, no 0, O, 1 or I)."];
    if (about("location") || about("x") || about("y"))
      return ["该位置不在本服务覆盖的社区范围内，请重新定位或在地图上点选问题所在位置。",
              "This position is outside every community served here: locate again or tap the place on the map."];
    if (about("reporter_phone")) return ["手机号码格式不正确：请填写 11 位手机号，或带区号的固定电话（如 0755-12345678）。",
                                         "The phone number is not valid: an 11-digit mobile, or a landline with its area code."];
    if (about("reporter_name")) return ["姓名最多 40 个字。", "The name is at most 40 characters."];
    if (about("description")) return ["请描述问题（最多 2000 字）。", "Describe the problem (at most 2,000 characters)."];
    if (about("category")) return ["请选择问题类别。", "Choose what kind of problem it is."];
    if (about("tracking_code")) return ["查询码是 10 位字母和数字。", "A tracking code has 10 letters and digits."];
    return [`提交未成功（错误 ${status}），请稍后重试。`, body.detail || fallbackEn || ""];
  }

  function showError(zhEn, status) {
    const box = $("error");
    if (!zhEn) { box.hidden = true; box.textContent = ""; delete box.dataset.status; return; }
    box.innerHTML = bilingual(zhEn[0], zhEn[1]);
    box.dataset.status = String(status ?? "");
    box.hidden = false;
  }

  async function call(method, path, body) {
    let response;
    try {
      response = await fetch(path, { method, headers: body ? { "Content-Type": "application/json" } : {},
                                     body: body ? JSON.stringify(body) : undefined });
    } catch (error) {
      return { status: 0, data: {} };
    }
    return { status: response.status, ok: response.ok, data: await response.json().catch(() => ({})) };
  }

  // -- /report --------------------------------------------------------------------------------------------------

  function reportPage() {
    const state = { pos: null };
    const map = L.map("map", { zoomControl: true }).setView([22.545, 114.06], 13);
    map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
    const mark = L.circleMarker([0, 0], { radius: 10, color: "#fff", weight: 3, fillColor: "#d32f2f", fillOpacity: 1 });
    const halo = L.circle([0, 0], { radius: 0, color: "#d32f2f", weight: 1, fillOpacity: 0.08 });

    function place(lon, lat, source, accuracy) {
      state.pos = { x: lon, y: lat, crs: CRS, source };
      mark.setLatLng([lat, lon]).addTo(map);
      if (accuracy) halo.setLatLng([lat, lon]).setRadius(accuracy).addTo(map); else halo.remove();
      if (source === "gps") map.setView([lat, lon], Math.max(map.getZoom(), 17), { animate: false });
      const how = source === "gps" ? ["已定位", "located"] : ["已在地图上选点", "picked on the map"];
      const acc = accuracy ? ` ±${Math.round(accuracy)} m` : "";
      $("where").innerHTML = bilingual(`${how[0]}：经度 ${lon.toFixed(6)}，纬度 ${lat.toFixed(6)}（WGS 84${acc}），可点击地图调整。`,
                                       `${how[1]}; tap the map to adjust.`);
      document.body.dataset.position = source;
    }

    function locate() {
      if (!navigator.geolocation) { showError(["此浏览器不能定位，请在地图上点选位置。", "This browser cannot locate you: tap the map."]); return; }
      $("where").innerHTML = bilingual("正在定位…", "locating…");
      navigator.geolocation.getCurrentPosition(
        (p) => { showError(null); place(p.coords.longitude, p.coords.latitude, "gps", p.coords.accuracy); },
        (error) => showError(error.code === 1
          ? ["未允许定位：请在地图上点选问题所在位置。", "Location not allowed: tap the place on the map."]
          : ["暂时无法定位：请在地图上点选问题所在位置。", "Cannot locate now: tap the place on the map."]),
        { enableHighAccuracy: true, timeout: 15000, maximumAge: 0 });
    }

    async function loadCategories() {
      const { ok, status, data } = await call("GET", "/api/cases/categories");
      if (!ok) { showError(explain(status, data)); return; }
      $("category").insertAdjacentHTML("beforeend", gridgov.categoryOptions(data));
      state.categories = Object.fromEntries(data.map((c) => [c.code, c]));
      document.body.dataset.categories = String(data.length);
    }

    function describeCategory() {
      const c = state.categories && state.categories[$("category").value];
      $("category-info").innerHTML = c ? bilingual(`由${c.department}处理${c.priority === "urgent" ? "（紧急）" : ""}`,
                                                   c.priority === "urgent" ? "urgent" : "") : "";
    }

    async function submit(event) {
      event.preventDefault();
      showError(null);
      if (!$("category").value) { showError(explain(422, { field: "category" })); return; }
      if (!state.pos) { showError(["请先定位，或在地图上点选问题所在位置。", "Locate yourself or tap the place on the map first."]); return; }
      if (!$("description").value.trim()) { showError(explain(422, { field: "description" })); return; }
      const body = { category: $("category").value, x: state.pos.x, y: state.pos.y, crs: state.pos.crs,
                     description: $("description").value.trim(),
                     reporter_name: $("reporter-name").value.trim() || null,
                     reporter_phone: $("reporter-phone").value.replace(/\s/g, "") || null };
      $("submit").disabled = true;
      const { ok, status, data } = await call("POST", "/api/public/cases", body);
      $("submit").disabled = false;
      if (!ok) { showError(explain(status, data), status); return; }
      $("report").hidden = true;
      $("done").hidden = false;
      $("code").textContent = data.tracking_code;
      $("track-link").href = "/report/track?code=" + encodeURIComponent(data.tracking_code);
      const more = data.duplicates ? `附近已有 ${data.duplicates} 件同类问题在处理。` : "";
      $("done-info").innerHTML = bilingual(`${data.category}：由${data.department}处理，当前状态「${data.state_label}」。${more}`,
                                           "Keep the code to follow the case; it is all you need.");
      document.body.dataset.code = data.tracking_code;
      window.scrollTo(0, 0);
    }

    function again() {
      $("description").value = "";
      $("done").hidden = true;
      $("report").hidden = false;
      delete document.body.dataset.code;
    }

    $("locate").addEventListener("click", locate);
    map.on("click", (e) => { showError(null); place(e.latlng.lng, e.latlng.lat, "map"); });
    $("category").addEventListener("change", describeCategory);
    $("report").addEventListener("submit", submit);
    $("again").addEventListener("click", again);
    loadCategories().then(() => { document.body.dataset.ready = "1"; });
  }

  // -- /report/track --------------------------------------------------------------------------------------------

  function trackPage() {
    let english = {};
    async function lookUp(event) {
      if (event) event.preventDefault();
      showError(null);
      const code = $("tracking-code").value.replace(/\s/g, "").toUpperCase();
      $("tracking-code").value = code;
      if (code.length !== 10) { showError(explain(422, { field: "tracking_code" }), 422); return; }
      const { ok, status, data } = await call("GET", "/api/public/cases/" + encodeURIComponent(code));
      if (!ok) { $("result").hidden = true; showError(explain(status, data), status); return; }
      history.replaceState(null, "", "/report/track?code=" + encodeURIComponent(code));
      $("result-state").innerHTML = bilingual(data.state_label, english[data.state]);
      $("result-what").innerHTML = bilingual(`${data.category} · ${data.department}` +
        (data.closed_at ? ` · 结案于 ${fmt(data.closed_at)}` : ""), `reported ${fmt(data.reported_at)}`);
      $("steps").innerHTML = data.steps.map((s) =>
        `<li data-state="${esc(s.state)}">${bilingual(s.label, english[s.state])}<time datetime="${esc(s.at)}">${esc(fmt(s.at))}</time></li>`).join("");
      $("result").hidden = false;
      document.body.dataset.tracked = data.state;
    }
    $("track").addEventListener("submit", lookUp);
    call("GET", "/api/cases/workflow").then(({ ok, data }) => {
      if (ok) english = Object.fromEntries(Object.entries(data.states).map(([k, v]) => [k, v.en]));
      const code = new URLSearchParams(location.search).get("code");
      if (code) { $("tracking-code").value = code; return lookUp(); }
      return null;
    }).finally(() => { document.body.dataset.ready = "1"; });
  }

  if ($("report")) reportPage();
  if ($("track")) trackPage();
})();
