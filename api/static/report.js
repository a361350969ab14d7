// gridgov residents' pages, no account: /report (问题上报: category, position, description, optional photos and
// contact → a tracking code; photos sent one by one right after, by the code; nearby open cases of the same kind
// offered to join) and /report/track (进度查询: the steps of a case by its code, no personal data; its photos; the
// satisfaction rating once it is closed, 回访). Chinese first, English as secondary text. Positions are sent with their CRS named: browser geolocation and taps on this map
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
    const said = body.code && body.code.startsWith("case.") ? gridgov.say(body) : null;
    if (said && said !== body.detail) return [said, body.detail];
    if (status === 413) return ["照片过大：每张最多 5 MB。", "The photo is too large: at most 5 MB each."];
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
    const form = body instanceof FormData;
    try {
      response = await fetch(path, { method, headers: body && !form ? { "Content-Type": "application/json" } : {},
                                     body: form ? body : body ? JSON.stringify(body) : undefined });
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
      const files = Array.from($("photos").files || []);
      if (files.length > 3) { showError(["最多选择 3 张照片。", "Choose at most 3 photos."]); return; }
      $("submit").disabled = true;
      const { ok, status, data } = await call("POST", "/api/public/cases", body);
      if (!ok) { $("submit").disabled = false; showError(explain(status, data), status); return; }
      const sent = await sendPhotos(data.tracking_code, files);
      $("submit").disabled = false;
      $("report").hidden = true;
      $("done").hidden = false;
      $("code").textContent = data.tracking_code;
      $("track-link").href = "/report/track?code=" + encodeURIComponent(data.tracking_code);
      const more = data.duplicates.length ? `附近已有 ${data.duplicates.length} 件同类问题在处理。` : "";
      $("done-info").innerHTML = bilingual(`${data.category}：由${data.department}处理，当前状态「${data.state_label}」。${more}`,
                                           "Keep the code to follow the case; it is all you need.");
      showPhotos(sent, files.length);
      showDuplicates(data.tracking_code, data.duplicates);
      document.body.dataset.code = data.tracking_code;
      window.scrollTo(0, 0);
    }

    // Each photo in its own request after the report (the report stands without them): [{ok, status, data}].
    async function sendPhotos(code, files) {
      const answers = [];
      for (const file of files) {
        const form = new FormData();
        form.append("photo", file, file.name);
        answers.push(await call("POST", `/api/public/cases/${encodeURIComponent(code)}/photos`, form));
      }
      return answers;
    }

    function showPhotos(answers, count) {
      const box = $("photos-info");
      box.hidden = count === 0;
      const stored = answers.filter((a) => a.ok).length;
      const refused = answers.filter((a) => !a.ok).map((a) => explain(a.status, a.data));
      box.innerHTML = bilingual(`已上传照片 ${stored} 张。`, `${stored} photo(s) stored.`) +
        refused.map(([zhText, en]) => `<br><span class="error">${bilingual(`有一张照片未收下：${zhText}`, en)}</span>`).join("");
      document.body.dataset.photos = String(stored);
      document.body.dataset.photosRefused = String(refused.length);
    }

    function showDuplicates(code, found) {
      $("duplicates").hidden = !found.length;
      $("duplicate-list").innerHTML = found.map((d) => `<li>${bilingual(`相距 ${Math.round(d.distance_m)} 米，${d.state_label}，` +
        `上报于 ${fmt(d.reported_at)}`, `${Math.round(d.distance_m)} m away`)}<button type="button" class="join" data-into="${esc(d.id)}">` +
        `${bilingual("是同一问题，合并跟进", "Same problem: join it")}</button></li>`).join("");
      for (const b of document.querySelectorAll("#duplicate-list button.join")) {
        b.addEventListener("click", async () => {
          const { ok, status, data } = await call("POST", `/api/public/cases/${encodeURIComponent(code)}/merge`,
                                                  { into: Number(b.dataset.into) });
          if (!ok) { showError(explain(status, data), status); return; }
          $("duplicates").hidden = true;
          $("done-info").innerHTML = bilingual(`已合并到附近同一问题的事件，当前状态「${data.state_label}」；用原查询码即可查看进度。`,
                                               "Joined the case nearby: follow it with the same code.");
          document.body.dataset.merged = "1";
        });
      }
    }

    function again() {
      $("description").value = "";
      $("photos").value = "";
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
      const merged = { merge: ["已合并到同一问题的事件", "merged into the case of the same problem"],
                       merged_in: ["同一问题的另一份上报已合并", "another report of the same problem joined"] };
      $("steps").innerHTML = data.steps.map((s) => {
        const [zhText, en] = merged[s.action] || [s.label, english[s.state]];
        return `<li data-state="${esc(s.state)}">${bilingual(zhText, en)}<time datetime="${esc(s.at)}">${esc(fmt(s.at))}</time></li>`;
      }).join("");
      $("result-photos").innerHTML = data.photos.map((id) =>
        `<img alt="照片 photo ${esc(id)}" src="/api/public/cases/${encodeURIComponent(code)}/photos/${esc(id)}">`).join("");
      $("result").hidden = false;
      $("rating").hidden = !data.may_rate;
      $("rated").hidden = data.rating === null || data.rating === undefined;
      if (!$("rated").hidden) $("rated").innerHTML = bilingual(`您的评价：${data.rating} 分，感谢反馈。`, `Your rating: ${data.rating} of 5. Thank you.`);
      state.code = code;
      document.body.dataset.tracked = data.state;
    }
    const state = { code: null };

    async function rate(event) {
      event.preventDefault();
      showError(null);
      const chosen = document.querySelector("#stars input:checked");
      if (!chosen) { showError(["请选择 1 到 5 分。", "Choose 1 to 5."]); return; }
      $("rating-send").disabled = true;
      const { ok, status, data } = await call("POST", `/api/public/cases/${encodeURIComponent(state.code)}/rating`,
                                              { score: Number(chosen.value), comment: $("rating-comment").value.trim() || null });
      $("rating-send").disabled = false;
      if (!ok) { showError(explain(status, data), status); return; }
      await lookUp();
      document.body.dataset.rated = String(data.rating);
    }
    $("track").addEventListener("submit", lookUp);
    $("rating").addEventListener("submit", rate);
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
