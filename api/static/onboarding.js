// gridgov onboarding page (新街道上线): the steps of README "Bring your own subdistrict" in order. Each upload
// (divisions: POST /api/divisions/import; buildings, streets, residents: POST /api/import/{kind}; grids:
// POST /api/import/grids) is checked first (dry run, nothing written) and then imported with the dry run's basis as
// If-Match; its report is shown as it comes: counts, findings or skipped features, and for the residents' ledger a
// table of the rejected rows (line, column, reason). The household estimate is one button.
"use strict";
const LABELS = {
  zh: { title: "新街道上线", intro: "按顺序完成以下步骤。每个文件先检查（不写入），确认报告后再导入。",
        divisions_title: "1. 街道与社区", file: "文件 (.gpkg / .geojson / .zip)", district_name: "区名称（未建区时）",
        reason: "原因", check: "检查", import: "导入",
        buildings_title: "2. 楼栋", buildings_intro: "楼栋轮廓（面图层；字段 building/levels/height/name）。同一文件再次导入不会重复。",
        layer: "图层（可选）", on_invalid: "无效面", invalid_fail: "拒绝整个文件", invalid_skip: "跳过", invalid_repair: "修复",
        streets_title: "3. 道路", streets_intro: "道路中心线（线图层，字段 highway/oneway/name），或 osmnx 导出的路网（u/v 与 street_nodes 图层）。",
        crs: "坐标系（文件声明有误时）",
        estimate_title: "4. 户数估算", estimate_intro: "为尚无户数的楼栋估算户数与人口（用于生成均衡网格；实有人口导入后以台账为准）。",
        estimate: "估算", estimated: "已估算楼栋",
        grids_title: "5. 网格", grids_intro: "上传在别处绘制的网格，或在“网格规划”页面生成均衡方案并采纳。",
        community: "社区代码（文件未注明时）", planner: "网格规划（自动均衡方案）",
        people_title: "6. 用户与密钥（命令行）",
        residents_title: "7. 实有人口",
        residents_intro: "每人一行（姓名、身份证号、联系电话、与户主关系、楼栋编码、单元、楼层、房号……）。楼栋编码在划分网格后生成；按楼栋名称或经纬度定位的台账也可提前导入。有被拒绝的行时不写入，除非勾选“跳过错误行”。",
        ledger_file: "台账 (.xlsx / .csv)", ledger_crs: "经纬度坐标系", max_distance: "按位置定位的最大距离（米）",
        skip_errors: "跳过错误行",
        next_title: "8. 之后", next_planner: "网格规划：自动均衡方案与微网格", next_field: "网格员：附近住户与排查任务",
        cli_intro: "命令行同样可做，且不受上传大小限制：",
        read: "读取", inserted: "新增", updated: "更新", unchanged: "未变", errors: "错误", warnings: "警告",
        already_present: "已存在", merged: "双向合并", repaired: "已修复", skipped: "跳过", rejected: "拒绝",
        checked: "已检查，未写入", written: "已写入", not_written: "未写入",
        buildings: "楼栋", street_nodes: "道路节点", street_edges: "路段",
        pieces: "连通片", largest_share: "最大连通片占比", km: "公里",
        persons_inserted: "新增人员", persons_updated: "更新人员", persons_moved: "迁移人员", persons_moved_out: "迁出人员",
        persons_unchanged: "未变人员", history: "历史记录", households_created: "新建住户", households_updated: "更新住户",
        line: "行号", column: "列", reason_col: "原因", more: "另有", rows: "行" },
  en: { title: "Bring your own subdistrict", intro: "Follow the steps in order. Each file is checked first (nothing written); import it once the report is right.",
        divisions_title: "1. Subdistrict and communities", file: "File (.gpkg / .geojson / .zip)",
        district_name: "District name (if not stored yet)", reason: "Reason", check: "Check", import: "Import",
        buildings_title: "2. Buildings", buildings_intro: "Building footprints (a polygon layer; fields building/levels/height/name). Importing the same file again adds nothing.",
        layer: "Layer (optional)", on_invalid: "Invalid polygons", invalid_fail: "refuse the file", invalid_skip: "skip",
        invalid_repair: "repair",
        streets_title: "3. Streets", streets_intro: "Road centrelines (a line layer; fields highway/oneway/name), or a street graph as osmnx writes it (u/v and a street_nodes layer).",
        crs: "CRS (if the file's is wrong)",
        estimate_title: "4. Household estimate", estimate_intro: "Estimate households and residents of buildings without counts (for balanced grids; the residents' ledger counts once imported).",
        estimate: "Estimate", estimated: "buildings estimated",
        grids_title: "5. Grids", grids_intro: "Upload grids drawn elsewhere, or propose and adopt a balanced plan on the planner page.",
        community: "Community code (if the file names none)", planner: "Planner (automatic balanced plan)",
        people_title: "6. Users and the key file (command line)",
        residents_title: "7. Residents",
        residents_intro: "One row per person (姓名, 身份证号, 联系电话, 与户主关系, 楼栋编码, 单元, 楼层, 房号 …). Building codes exist once grids are drawn; a ledger placing rows by building name or position can come earlier. With rejected rows nothing is written unless \"skip rejected rows\" is ticked.",
        ledger_file: "Ledger (.xlsx / .csv)", ledger_crs: "CRS of longitude/latitude", max_distance: "Placing by position: at most (m)",
        skip_errors: "skip rejected rows",
        next_title: "8. Then", next_planner: "Planner: automatic balanced plans and micro-grids",
        next_field: "Grid workers: nearby households and campaigns",
        cli_intro: "The command line does the same, without the upload limits:",
        read: "read", inserted: "inserted", updated: "updated", unchanged: "unchanged", errors: "errors",
        warnings: "warnings", already_present: "already present", merged: "merged two-way", repaired: "repaired",
        skipped: "skipped", rejected: "rejected",
        checked: "checked, nothing written", written: "written", not_written: "not written",
        buildings: "buildings", street_nodes: "street nodes", street_edges: "street edges",
        pieces: "connected pieces", largest_share: "longest piece", km: "km",
        persons_inserted: "persons new", persons_updated: "persons updated", persons_moved: "persons moved",
        persons_moved_out: "persons moved out", persons_unchanged: "persons unchanged", history: "history rows",
        households_created: "households created", households_updated: "households updated",
        line: "Line", column: "Column", reason_col: "Reason", more: "and", rows: "more rows" },
};
const { t, esc } = gridgov;
const SHOWN_ROWS = 500;  // rejected rows drawn in the table (the report has them all, up to 100,000)

const joined = (pairs) => pairs.filter(([, v]) => v !== undefined && v !== null)
  .map(([k, v]) => `${t(k)} ${v}`).join(" · ");
const items = (list) => list.map(([cls, text]) => `<li class="${esc(cls)}">${esc(text)}</li>`).join("");
const state = (report) => (report.dry_run ? t("checked") : (report.written ? t("written") : t("not_written")));

const RENDER = {
  // divisions and grids: counts and findings
  divisions(report) {
    const counts = joined(["read", "inserted", "updated", "unchanged", "errors", "warnings"].map((k) => [k, report[k]]));
    return `<p class="counts">${esc(report.file || "")} — ${esc(counts)} — ${esc(state(report))}</p>
      <ul>${items((report.findings || []).map((f) => [f.severity, `${f.feature}: ${f.message}`]))}
      ${items((report.notes || []).map((n) => ["note", n]))}</ul>`;
  },
  // buildings and streets: a line per kind of row, connectivity, skipped features
  layer(report) {
    const tallies = Object.entries(report.tallies || {}).map(([kind, c]) => {
      const skipped = Object.values(c.skipped || {}).reduce((a, b) => a + b, 0);
      return `<li class="tally" data-kind="${esc(kind)}">${esc(t(kind))}: ${esc(joined([["read", c.read],
        ["inserted", c.inserted], ["already_present", c.already_present], ["merged", c.merged || undefined],
        ["repaired", c.repaired || undefined], ["skipped", skipped]]))}</li>`;
    }).join("");
    const c = report.connectivity;
    const network = c ? `<li class="network">${esc(joined([["pieces", c.pieces], ["km", c.total_km],
      ["largest_share", `${(100 * c.largest_share).toFixed(1)}%`]]))}</li>` : "";
    return `<p class="counts">${esc(report.file || "")} — ${esc(state(report))}</p><ul>${tallies}${network}
      ${items((report.issues || []).slice(0, 50).map((i) => ["issue", `${i.feature}: ${i.reason}`]))}
      ${items((report.notes || []).map((n) => ["note", n]))}</ul>`;
  },
  // the residents' ledger: counts, what the merge did, the rejected rows as a table
  residents(report) {
    const m = report.counts || {};
    const merged = joined(Object.keys(m).map((k) => [k, m[k]]));
    const rows = (report.rejected || []).slice(0, SHOWN_ROWS).map((r) => `<tr><td>${esc(r.line)}</td>
      <td>${esc(r.column)}${r.letter ? ` (${esc(r.letter)})` : ""}</td><td>${esc(r.reason)}</td></tr>`).join("");
    const more = report.rejected_count > SHOWN_ROWS ? `<p>${esc(t("more"))} ${report.rejected_count - SHOWN_ROWS} ${esc(t("rows"))}</p>` : "";
    const table = rows ? `<table class="rejected"><thead><tr><th>${esc(t("line"))}</th><th>${esc(t("column"))}</th>
      <th>${esc(t("reason_col"))}</th></tr></thead><tbody>${rows}</tbody></table>${more}` : "";
    return `<p class="counts">${esc(report.file || "")} — ${esc(joined([["read", report.read],
      ["rejected", report.rejected_count]]))} — ${esc(state(report))}</p>
      ${merged ? `<p class="merged">${esc(merged)}</p>` : ""}${table}
      <ul>${items((report.notes || []).map((n) => ["note", n]))}</ul>`;
  },
};

function showReport(box, kind, report, message) {
  box.innerHTML = `${message ? `<p class="message">${esc(message)}</p>` : ""}${RENDER[kind](report)}`;
  box.dataset.state = report.dry_run ? "checked" : (report.written ? "written" : "refused");
  box.shown = [kind, report, message];  // drawn again in the other language
}

function showMessage(box, message) {
  box.innerHTML = `<p class="message">${esc(message)}</p>`;
  box.dataset.state = "refused";
  box.shown = null;
}

async function upload(form, dryRun) {
  const box = form.parentElement.querySelector(".report");
  const body = new FormData(form);
  body.set("dry_run", String(dryRun));
  for (const [key, value] of [...body.entries()]) if (value === "") body.delete(key);
  const headers = {};
  if (gridgov.token()) headers.Authorization = "Bearer " + gridgov.token();
  if (!dryRun && form.dataset.basis) headers["If-Match"] = form.dataset.basis;
  const response = await fetch(form.dataset.url, { method: "POST", body, headers });
  const data = await response.json().catch(() => ({}));
  const commit = form.querySelector("button.commit");
  if (response.ok) {
    showReport(box, form.dataset.kind, data, "");
    form.dataset.basis = data.basis || "";
    commit.disabled = !dryRun;
  } else {
    const message = data.code ? gridgov.say(data) : (data.detail || String(response.status));
    if (data.report) { showReport(box, form.dataset.kind, data.report, message); box.dataset.state = "refused"; }
    else showMessage(box, message);
    commit.disabled = true;
  }
}

async function estimate(button) {
  const box = button.parentElement.querySelector(".report");
  try {
    const { data } = await gridgov.request("POST", "/api/buildings/estimate");
    box.innerHTML = `<p class="counts">${esc(t("estimated"))}: ${esc(data.estimated)}</p>`;
    box.dataset.state = "written";
  } catch (error) {
    showMessage(box, error.message);
  }
}

document.querySelectorAll("form.upload").forEach((form) => {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    upload(form, event.submitter?.value !== "false").catch((error) => {
      showMessage(form.parentElement.querySelector(".report"), error.message);
    });
  });
  // a new file or other options are checked before they are imported
  form.addEventListener("input", () => { form.querySelector("button.commit").disabled = true; });
  form.addEventListener("change", () => { form.querySelector("button.commit").disabled = true; });
});
document.getElementById("estimate").addEventListener("click", (event) => estimate(event.currentTarget));

gridgov.setup(LABELS, async () => {
  document.querySelectorAll(".report").forEach((box) => {
    if (box.shown) { const kept = box.dataset.state; showReport(box, ...box.shown); box.dataset.state = kept; }
  });
});
