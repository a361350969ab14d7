// The field page's cases tab (事件): the cases of the worker's grids and those assigned to them, most urgent first
// with the working time left; a case sheet with the actions the worker may take now (labels from
// GET /api/cases/workflow), sent with If-Match (a 409 or 412 says why and reloads the case); "report a case here"
// from the position set on the field tab (sessionStorage "gridgov.field.position", in the CRS it was taken in).
// Cases flagged by a leader (督办) carry a tag; the sheet shows the case's photos (fetched with the token, shown as
// data: URLs, which the CSP allows) and adds one (before/after handling) from the phone's camera.
// Kept apart from field.js; registered with gridgov.part() before field.js calls gridgov.setup().
"use strict";
(() => {
  const LABELS = {
    zh: { tab_field: "外勤", tab_cases: "事件", case_filter: "显示", filter_open: "未办结（我的网格和我的事件）",
          filter_all: "全部，含已办结",
          filter_mine: "派给我的", filter_overdue: "已超时（督办）", filter_dispatched: "待接单", filter_handling: "处置中",
          filter_feedback: "待核查", refresh_cases: "刷新", report_here: "在我的位置上报事件", cases_title: "事件",
          case_note: "说明 / 理由", ext_amount: "延期", ext_unit: "单位", work_days: "工作日", work_hours: "工作小时",
          close_sheet: "关闭", category: "类别", description: "描述", report_send: "上报", no_cases: "没有事件",
          cases_found: "件", left: "剩余", over: "超时", hours: "小时", mins: "分", mine: "我的", deadline: "期限",
          no_clock: "不计时", need_note: "请填写理由", stale: "该事件刚被他人更新，已重新加载，请核对后再操作。",
          not_now: "该事件当前状态不能进行此操作，已重新加载。", done: "已完成：", reported: "已上报事件",
          no_position: "请先定位（外勤页“定位我”或在此定位）", position: "位置", no_actions: "您现在无需处理此事件",
          grid: "网格", assignee: "承办", loading: "加载中…", supervised: "督办", add_photo: "添加照片",
          photo_added: "照片已保存", photos: "照片", filter_supervised: "督办件" },
    en: { tab_field: "Field", tab_cases: "Cases", case_filter: "Show", filter_open: "Not finished (my grids and my cases)",
          filter_all: "All, finished ones too",
          filter_mine: "Assigned to me", filter_overdue: "Overdue", filter_dispatched: "To accept",
          filter_handling: "Being handled", filter_feedback: "To verify", refresh_cases: "Refresh",
          report_here: "Report a case here", cases_title: "Cases", case_note: "Note / reason", ext_amount: "Extension",
          ext_unit: "Unit", work_days: "working days", work_hours: "working hours", close_sheet: "Close",
          category: "Category", description: "Description", report_send: "Report", no_cases: "No cases",
          cases_found: "cases", left: "left", over: "overdue", hours: "h", mins: "min", mine: "mine",
          deadline: "deadline", no_clock: "no clock", need_note: "Give a reason",
          stale: "Someone changed this case just now: it was reloaded, check it and try again.",
          not_now: "This action is not possible in the case's state now: it was reloaded.", done: "Done: ",
          reported: "Case reported", no_position: "Locate yourself first (field tab or here)", position: "Position",
          no_actions: "Nothing for you to do on this case now", grid: "grid", assignee: "assignee",
          loading: "Loading…", supervised: "Supervised", add_photo: "Add a photo", photo_added: "Photo stored",
          photos: "Photos", filter_supervised: "Supervised" },
  };
  const HANDLE = new Set(["accept", "return", "report_back", "request_extension"]);  // the assignee's
  const VERIFY = new Set(["verify", "verify_fail"]);  // someone else's, in the worker's grid
  const POSITION = "gridgov.field.position";
  const { t, esc, api, request } = gridgov;
  const $ = (id) => document.getElementById(id);
  const zh = () => gridgov.state.lang === "zh";
  const state = { me: null, workflow: null, current: null, etag: null, categories: null };
  const when = new Intl.DateTimeFormat("zh-CN", { timeZone: "Asia/Shanghai", month: "2-digit", day: "2-digit",
                                                  hour: "2-digit", minute: "2-digit", hour12: false });
  const fmt = (iso) => (iso ? when.format(new Date(iso)) : "");

  // "剩余 1 小时 20 分" / "超时 35 分" (English: "1 h 20 min left" / "35 min overdue") of remaining_min (working
  // minutes, negative when overdue); "" without a clock.
  function timeLeft(minutes) {
    if (minutes === null || minutes === undefined) return "";
    const total = Math.round(Math.abs(minutes)), h = Math.floor(total / 60), m = total % 60;
    const span = [h ? `${h} ${t("hours")}` : "", m || !h ? `${m} ${t("mins")}` : ""].filter(Boolean).join(" ");
    const word = t(minutes < 0 ? "over" : "left");
    return zh() ? `${word} ${span}` : `${span} ${word}`;
  }

  const stateLabel = (s) => (state.workflow ? state.workflow.states[s][zh() ? "zh" : "en"] : s);
  function actionLabel(name) {
    const w = state.workflow, entry = w.actions[name] || w.extension_labels[name];
    return entry ? entry[zh() ? "zh" : "en"] : name;
  }
  const needsNote = (name) => name === "request_extension" || Boolean(state.workflow.actions[name]?.needs_note);

  // What the worker may do now: the workflow's `allowed`, kept to their part (handling their own cases, verifying
  // others'); the server decides anyway (403 otherwise).
  function mayDo(c) {
    const own = c.assignee === state.me.username;
    return c.allowed.filter((a) => (HANDLE.has(a) && own) || (VERIFY.has(a) && !own));
  }

  function showTab(name) {
    for (const b of document.querySelectorAll("#tabs [data-tab]")) b.setAttribute("aria-selected", String(b.dataset.tab === name));
    $("field").hidden = name !== "field";
    $("cases").hidden = name !== "cases";
    document.body.dataset.tab = name;
    if (name === "field") window.dispatchEvent(new Event("resize"));  // Leaflet re-measures its map
    else loadCases().catch((e) => { $("case-status").textContent = e.message; });
  }

  function query() {
    const choice = $("case-filter").value, params = new URLSearchParams({ crs: "EPSG:4326", limit: 200 });
    if (choice === "open") params.set("open", "true");
    else if (choice === "mine") params.set("mine", "true");
    else if (choice === "overdue") params.set("overdue", "true");
    else if (choice === "supervised") params.set("supervised", "true");
    else if (choice.startsWith("state:")) params.set("state", choice.slice(6));
    return params;
  }

  let generation = 0;  // only the latest load renders: a filter changed quickly shows no stale answer
  async function loadCases() {
    const ticket = ++generation;
    delete document.body.dataset.cases;  // set again when this load has rendered
    $("case-status").textContent = t("loading");
    const page = await api("/api/cases?" + query());
    if (ticket !== generation) return;
    const list = $("case-list");
    list.innerHTML = "";
    for (const c of page.cases) {
      const item = document.createElement("li");
      item.className = "case" + (c.overdue ? " overdue" : "");
      Object.assign(item.dataset, { id: c.id, state: c.state, overdue: c.overdue ? "1" : "0",
                                    supervised: c.supervised ? "1" : "0" });
      const mine = c.assignee === state.me.username ? `<span class="tag mine">${esc(t("mine"))}</span>` : "";
      const flag = c.supervised ? `<span class="tag supervised" title="${esc(c.supervised.note)}">${esc(t("supervised"))}</span>` : "";
      const urgent = c.priority === "urgent" ? `<span class="tag urgent">急</span>` : "";
      item.innerHTML = `<span class="what">${urgent}${flag}${esc(c.category)} ${mine}</span>` +
        `<span class="state s-${esc(c.state)}">${esc(stateLabel(c.state))}</span>` +
        `<span class="desc">${esc(c.description)}</span>` +
        `<span class="left${c.overdue ? " overdue" : ""}">${esc(timeLeft(c.remaining_min))}</span>` +
        `<span class="meta">#${c.id} · ${esc(c.grid_code || "")}</span>`;
      item.addEventListener("click", () => openCase(c.id));
      list.appendChild(item);
    }
    $("case-status").textContent = page.total ? `${page.total} ${t("cases_found")}` : t("no_cases");
    await badge();
    if (ticket === generation) document.body.dataset.cases = String(page.cases.length);
  }

  async function badge() {  // my open cases waiting for me (to accept or being handled)
    const [a, b] = await Promise.all(["dispatched", "handling"].map((s) => api(`/api/cases?mine=true&state=${s}&limit=1`)));
    const n = a.total + b.total;
    $("case-badge").hidden = n === 0;
    $("case-badge").textContent = String(n);
  }

  function renderCase(c, events) {
    state.current = c;
    const sheet = $("case-sheet");
    Object.assign(sheet.dataset, { caseId: c.id, state: c.state, version: c.version });
    $("case-title").textContent = `#${c.id} ${c.category} · ${stateLabel(c.state)}`;
    $("case-what").innerHTML = `${esc(c.description)}<br><small>${esc(t("grid"))} ${esc(c.grid_code || "")} · ` +
      `${esc(t("assignee"))} ${esc(c.assignee || "—")} · ${esc(c.department)}</small>`;
    $("case-supervised").hidden = !c.supervised;
    if (c.supervised) $("case-supervised").textContent = `${t("supervised")}: ${c.supervised.note} (${c.supervised.by}, ${fmt(c.supervised.at)})`;
    $("case-photo-add").hidden = ["closed", "rejected", "merged"].includes(c.state);
    $("case-clock").innerHTML = c.deadline
      ? `<span class="left${c.overdue ? " overdue" : ""}">${esc(timeLeft(c.remaining_min))}</span> · ${esc(t("deadline"))} ${esc(fmt(c.deadline))}`
      : esc(t("no_clock"));
    if (events) {
      $("case-history").innerHTML = events.map((e) => `<li><time>${esc(fmt(e.at))}</time> ${esc(actionLabelOrReport(e.action))} ` +
        `→ ${esc(stateLabel(e.to_state))} <small>${esc(e.actor)}</small>${e.note ? `<br><q>${esc(e.note)}</q>` : ""}</li>`).join("");
    }
    const actions = mayDo(c);
    $("case-actions").innerHTML = actions.length
      ? actions.map((a) => `<button type="button" class="act${needsNote(a) ? " needs-note" : ""}" data-action="${esc(a)}">${esc(actionLabel(a))}</button>`).join("")
      : `<span class="note">${esc(t("no_actions"))}</span>`;
    $("case-extension").hidden = !actions.includes("request_extension");
    sheet.hidden = false;
  }
  const actionLabelOrReport = (a) => (a === "report" ? (zh() ? "上报" : "report") : actionLabel(a));

  async function openCase(id, message = "") {
    const [{ data, headers }, events] = await Promise.all([request("GET", `/api/cases/${id}?crs=EPSG:4326`),
                                                           api(`/api/cases/${id}/history`)]);
    state.etag = headers.get("ETag");
    $("case-note").value = "";
    renderCase(data, events);
    $("case-message").textContent = message;
    showPhotos(id).catch(() => {});
  }

  // The case's photos as data: URLs (an <img> cannot send the bearer token).
  async function showPhotos(id) {
    const list = await api(`/api/cases/${id}/photos`);
    const urls = await Promise.all(list.map(async (p) => {
      const response = await fetch(`/api/cases/${id}/photos/${p.id}`, { headers: { Authorization: "Bearer " + gridgov.token() } });
      if (!response.ok) return null;
      const blob = await response.blob();
      return new Promise((resolve) => { const r = new FileReader(); r.onload = () => resolve(r.result); r.readAsDataURL(blob); });
    }));
    if (!state.current || state.current.id !== id) return;
    $("case-photos").innerHTML = list.map((p, i) => (urls[i]
      ? `<img alt="${esc(t("photos"))} ${esc(p.id)}" data-photo="${esc(p.id)}" src="${urls[i]}">` : "")).join("");
    $("case-sheet").dataset.photos = String(list.length);
  }

  async function addPhoto() {
    const file = $("case-photo").files[0], c = state.current;
    if (!file || !c) return;
    const form = new FormData();
    form.append("photo", file, file.name);
    let response;
    try {
      response = await fetch(`/api/cases/${c.id}/photos`, { method: "POST", body: form,
                                                             headers: { Authorization: "Bearer " + gridgov.token() } });
    } catch (error) { $("case-message").textContent = error.message; return; }
    const body = await response.json().catch(() => ({}));
    $("case-photo").value = "";
    if (!response.ok) { $("case-message").textContent = gridgov.say(body) || String(response.status); return; }
    $("case-message").textContent = t("photo_added");
    await showPhotos(c.id);
  }

  async function act(action) {
    const c = state.current, note = $("case-note").value.trim();
    if (needsNote(action) && !note) { $("case-message").textContent = t("need_note"); $("case-note").focus(); return; }
    const body = { action, note: note || null };
    if (action === "request_extension") body.extension = { amount: Number($("ext-amount").value), unit: $("ext-unit").value };
    for (const b of document.querySelectorAll("#case-actions button")) b.disabled = true;
    try {
      const { data, headers } = await request("POST", `/api/cases/${c.id}/actions?crs=EPSG:4326`, body,
                                              { "If-Match": state.etag });
      state.etag = headers.get("ETag");
      await openCase(data.id, t("done") + actionLabel(action));
      loadCases().catch(() => {});
    } catch (error) {
      if (!(error instanceof gridgov.ApiError)) { $("case-message").textContent = error.message; return; }
      if (error.status === 409 || error.status === 412) {
        await openCase(c.id, `${t(error.status === 412 ? "stale" : "not_now")} (${error.message})`);
        loadCases().catch(() => {});
      } else {
        $("case-message").textContent = error.message;
        for (const b of document.querySelectorAll("#case-actions button")) b.disabled = false;
      }
    }
  }

  // -- report a case here ---------------------------------------------------------------------------------------

  const storedPosition = () => JSON.parse(sessionStorage.getItem(POSITION) || "null");
  function showWhere() {
    const p = storedPosition();
    $("report-where").textContent = p ? `${t("position")}: ${p.x.toFixed(6)}, ${p.y.toFixed(6)} (${p.crs})` : t("no_position");
  }

  async function openReport() {
    if (!state.categories) {
      state.categories = await api("/api/cases/categories");
      $("report-category").innerHTML = gridgov.categoryOptions(state.categories);
    }
    $("report-message").textContent = "";
    showWhere();
    $("case-report").hidden = false;
  }

  function locateHere() {
    if (!navigator.geolocation) return;
    navigator.geolocation.getCurrentPosition((p) => {
      sessionStorage.setItem(POSITION, JSON.stringify({ x: p.coords.longitude, y: p.coords.latitude, crs: "EPSG:4326" }));
      showWhere();
    }, (error) => { $("report-message").textContent = error.message; }, { enableHighAccuracy: true, timeout: 15000 });
  }

  async function sendReport(event) {
    event.preventDefault();
    const p = storedPosition();
    if (!p) { $("report-message").textContent = t("no_position"); return; }
    try {
      const { data } = await request("POST", "/api/cases?crs=EPSG:4326", { category: $("report-category").value,
        x: p.x, y: p.y, crs: p.crs, description: $("report-description").value.trim() });
      $("case-report").hidden = true;
      $("report-description").value = "";
      await loadCases();
      $("case-status").textContent = `${t("reported")} #${data.id}`;
      document.body.dataset.reportedCase = String(data.id);
    } catch (error) { $("report-message").textContent = error.message; }
  }

  function wire() {
    for (const b of document.querySelectorAll("#tabs [data-tab]")) b.addEventListener("click", () => showTab(b.dataset.tab));
    $("case-filter").addEventListener("change", () => loadCases().catch((e) => { $("case-status").textContent = e.message; }));
    $("case-refresh").addEventListener("click", () => loadCases().catch((e) => { $("case-status").textContent = e.message; }));
    $("case-actions").addEventListener("click", (e) => { const b = e.target.closest("button[data-action]"); if (b) act(b.dataset.action); });
    $("case-close").addEventListener("click", () => { $("case-sheet").hidden = true; });
    $("case-photo").addEventListener("change", () => addPhoto().catch((e) => { $("case-message").textContent = e.message; }));
    $("case-here").addEventListener("click", () => openReport().catch((e) => { $("case-status").textContent = e.message; }));
    $("report-locate").addEventListener("click", locateHere);
    $("report-cancel").addEventListener("click", () => { $("case-report").hidden = true; });
    $("case-report").addEventListener("submit", sendReport);
  }

  async function start(me) {
    state.me = me;
    try {
      state.workflow = await api("/api/cases/workflow");
      await loadCases();
      if (state.current && !$("case-sheet").hidden) renderCase(state.current);  // after a language change
    } catch (error) {
      $("case-status").textContent = error.message;  // the field tab works without the cases
    }
  }

  wire();
  gridgov.part(LABELS, start);
})();
