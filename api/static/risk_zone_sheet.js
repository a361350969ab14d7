// gridgov printable zone sheet (/risk-zones/{id}/sheet): the zone's boundary in its level's colour and the
// checkpoints within 50 m of it on a map, then its level, period, reason and author, households and residents per
// grid (counts in the caller's household scope), the masked household list for roles that read households (an
// audited read, purpose "zone sheet"), the checkpoints, and a print button. Data: GET /api/risk-zones/{id}/sheet.
"use strict";
(() => {
  const LABELS = {
    zh: { title: "风险区域清单", print: "打印", loading: "正在生成清单…", level: "等级", period: "时段", until_lifted: "至解除",
          reason: "原因", author: "划定人", area: "面积", target: "划定对象", households: "户数", residents: "人数",
          buildings: "楼栋数", grid: "网格", per_grid: "各网格户数", checkpoints: "周边卡口（50 米内）", none: "无",
          name: "名称", status: "状态", staff: "值守人数", hours: "开放时间", list: "住户名单（已脱敏）", unit: "单元",
          room: "房号", head: "户主", phone: "电话", building: "楼栋", in_force: "生效中", ended: "已解除/已到期",
          total: "合计", staffed: "有人值守", sealed: "已封闭", unstaffed: "无人值守",
          division: "行政区划", enclosure: "围合区域", grid_kind: "网格", building_kind: "楼栋", unit_kind: "单元",
          polygon: "绘制区域" },
    en: { title: "Risk zone sheet", print: "Print", loading: "Preparing the sheet…", level: "Level", period: "Period",
          until_lifted: "until lifted", reason: "Reason", author: "Designated by", area: "Area", target: "Drawn on",
          households: "Households", residents: "Residents", buildings: "Buildings", grid: "Grid",
          per_grid: "Households per grid", checkpoints: "Checkpoints within 50 m", none: "none", name: "Name",
          status: "Status", staff: "Staff", hours: "Hours", list: "Households (masked)", unit: "Unit", room: "Room",
          head: "Head", phone: "Phone", building: "Building", in_force: "in force", ended: "lifted or ended",
          total: "Total", staffed: "staffed", sealed: "sealed", unstaffed: "unstaffed",
          division: "division", enclosure: "enclosure", grid_kind: "grid", building_kind: "building", unit_kind: "unit",
          polygon: "drawn polygon" },
  };
  const { t, esc, api } = gridgov;
  const $ = (id) => document.getElementById(id);
  const zoneId = decodeURIComponent(location.pathname.split("/")[2] || "");
  const HOUSEHOLD_ROLES = ["admin", "planner", "inspector", "grid_worker"];
  document.body.classList.add("sheet-page");
  const map = L.map("sheet-map", { zoomSnap: 0.25 }).setView([22.565, 114.072], 15);
  map.attributionControl.setPrefix(false);
  const boundary = L.geoJSON(null).addTo(map);
  const checkpoints = L.layerGroup().addTo(map);
  const CHECKPOINT_COLOURS = { staffed: "#2e7d32", sealed: "#757575", unstaffed: "#ff9800" };
  const KINDS = { division: "division", enclosure: "enclosure", grid: "grid_kind", building: "building_kind",
                  unit: "unit_kind", polygon: "polygon" };

  const when = (v) => new Date(v).toLocaleString(gridgov.state.lang === "zh" ? "zh-CN" : "en-GB");
  const cell = (v, cls = "") => `<td${cls ? ` class="${cls}"` : ""}>${esc(v ?? "")}</td>`;
  const table = (head, rows) => rows.length
    ? `<table><tr>${head.map((h) => `<th>${esc(t(h))}</th>`).join("")}</tr>${rows.join("")}</table>` : `<p>${esc(t("none"))}</p>`;

  function draw(sheet) {
    const z = sheet.zone, lv = z.level;
    boundary.clearLayers().addData({ type: "Feature", geometry: z.geometry, properties: {} });
    boundary.setStyle({ color: lv.colour, weight: 3, fillColor: lv.colour, fillOpacity: 0.25 });
    checkpoints.clearLayers();
    for (const c of sheet.checkpoints) {
      L.circleMarker([c.location[1], c.location[0]], { radius: 6, color: "#fff", weight: 2, fillOpacity: 1,
        fillColor: CHECKPOINT_COLOURS[c.status] || "#ff9800" }).bindTooltip(esc(c.name)).addTo(checkpoints);
    }
    map.fitBounds(boundary.getBounds(), { animate: false, padding: [20, 20] });
  }

  function body(sheet, households) {
    const z = sheet.zone, lv = z.level, zh = gridgov.state.lang === "zh";
    const levelName = zh ? lv.label_zh : lv.label_en;
    const grids = sheet.grids.map((g) => `<tr>${cell(g.grid_code)}${cell(g.buildings, "n")}${cell(g.households, "n")}${cell(g.residents, "n")}</tr>`);
    if (grids.length) grids.push(`<tr><th>${esc(t("total"))}</th><td></td>${cell(sheet.households, "n")}${cell(sheet.residents, "n")}</tr>`);
    const cps = sheet.checkpoints.map((c) => `<tr>${cell(c.name)}${cell(t(c.status))}${cell(c.staff_count, "n")}${cell(c.opening_hours)}</tr>`);
    const list = households === null ? "" : `<h2>${esc(t("list"))}</h2>` + table(["building", "unit", "room", "head", "phone", "residents"],
      households.map((h) => `<tr>${cell(h.building_code || h.building_name || "#" + h.building_id)}${cell(h.unit)}${cell(h.room)}` +
                            `${cell(h.head_name)}${cell(h.head_phone)}${cell(h.residents, "n")}</tr>`));
    $("sheet-body").innerHTML =
      `<h1 id="zone-name">${esc(z.name)}</h1>` +
      `<p id="zone-level"><span class="level-swatch" style="background:${esc(lv.colour)}"></span><b>${esc(levelName)}</b> ` +
      `· ${esc(z.in_force ? t("in_force") : t("ended"))}</p>` +
      `<table id="zone-facts"><tr><th>${esc(t("target"))}</th>${cell(`${t(KINDS[z.target_kind])} ${z.target_ref || ""}${z.unit ? " · " + z.unit : ""}`)}</tr>` +
      `<tr><th>${esc(t("period"))}</th>${cell(`${when(z.valid_from)} – ${z.valid_to ? when(z.valid_to) : t("until_lifted")}`)}</tr>` +
      `<tr><th>${esc(t("reason"))}</th>${cell(z.reason)}</tr><tr><th>${esc(t("author"))}</th>${cell(z.author)}</tr>` +
      `<tr><th>${esc(t("area"))}</th>${cell(Math.round(sheet.area_m2).toLocaleString() + " m²")}</tr>` +
      `<tr><th>${esc(t("households"))}</th><td id="sheet-households" class="n">${esc(sheet.households)}</td></tr></table>` +
      `<h2>${esc(t("per_grid"))}</h2>` + table(["grid", "buildings", "households", "residents"], grids) +
      `<h2>${esc(t("checkpoints"))}</h2><div id="sheet-checkpoints">` + table(["name", "status", "staff", "hours"], cps) + "</div>" +
      list;
    document.title = `${t("title")} · ${z.name}`;
  }

  async function start(me) {
    $("message").textContent = t("loading");
    const sheet = await api(`/api/risk-zones/${encodeURIComponent(zoneId)}/sheet`);
    const households = HOUSEHOLD_ROLES.includes(me.role)
      ? await api(`/api/risk-zones/${encodeURIComponent(zoneId)}/households?limit=2000&purpose=${encodeURIComponent("zone sheet")}`).catch(() => null)
      : null;
    draw(sheet);
    body(sheet, households);
    $("message").textContent = "";
  }

  $("print-now").addEventListener("click", () => window.print());
  gridgov.setup(LABELS, (me) => start(me).catch((e) => { $("message").textContent = e.message || String(e); throw e; }));
})();
