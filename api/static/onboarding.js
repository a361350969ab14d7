// gridgov onboarding page (新街道上线): the steps of README "Bring your own subdistrict" that have an upload
// endpoint (divisions: POST /api/divisions/import; grids: POST /api/import/grids), each checked first (dry run,
// nothing written) and then imported with the dry run's basis as If-Match; each report shown as it comes.
"use strict";
const LABELS = {
  zh: { title: "新街道上线", intro: "按顺序完成以下步骤。每个文件先检查（不写入），确认报告后再导入。",
        divisions_title: "1. 街道与社区", file: "文件 (.gpkg / .geojson / .zip)", district_name: "区名称（未建区时）",
        reason: "原因", check: "检查", import: "导入", cli_title: "2. 楼栋、道路、户数估算（命令行）",
        cli_intro: "这些数据量大，暂无网页上传，请在服务器上运行：", grids_title: "3. 网格",
        grids_intro: "上传在别处绘制的网格，或在“网格规划”页面生成均衡方案并采纳。", community: "社区代码（文件未注明时）",
        planner: "网格规划", people_title: "4. 用户与实有人口（命令行）", read: "读取", inserted: "新增",
        updated: "更新", unchanged: "未变", errors: "错误", warnings: "警告", checked: "已检查，未写入",
        written: "已写入", not_written: "未写入" },
  en: { title: "Bring your own subdistrict", intro: "Follow the steps in order. Each file is checked first (nothing written); import it once the report is right.",
        divisions_title: "1. Subdistrict and communities", file: "File (.gpkg / .geojson / .zip)",
        district_name: "District name (if not stored yet)", reason: "Reason", check: "Check", import: "Import",
        cli_title: "2. Buildings, streets, household estimate (command line)",
        cli_intro: "These files are large and have no upload here yet; run on the server:", grids_title: "3. Grids",
        grids_intro: "Upload grids drawn elsewhere, or propose and adopt a balanced plan on the planner page.",
        community: "Community code (if the file names none)", planner: "Planner",
        people_title: "4. Users and residents (command line)", read: "read", inserted: "inserted", updated: "updated",
        unchanged: "unchanged", errors: "errors", warnings: "warnings", checked: "checked, nothing written",
        written: "written", not_written: "not written" },
};
const { t, esc } = gridgov;

function showReport(box, report, message) {
  const counts = ["read", "inserted", "updated", "unchanged", "errors", "warnings"]
    .filter((k) => report[k] !== undefined).map((k) => `${t(k)} ${report[k]}`).join(" · ");
  const state = report.dry_run ? t("checked") : (report.written ? t("written") : t("not_written"));
  const findings = (report.findings || []).map((f) =>
    `<li class="${esc(f.severity)}">${esc(f.feature)}: ${esc(f.message)}</li>`).join("");
  const notes = (report.notes || []).map((n) => `<li>${esc(n)}</li>`).join("");
  box.innerHTML = `${message ? `<p class="message">${esc(message)}</p>` : ""}
    <p class="counts">${esc(report.file || "")} — ${esc(counts)} — ${esc(state)}</p><ul>${findings}${notes}</ul>`;
  box.dataset.state = report.dry_run ? "checked" : (report.written ? "written" : "refused");
  box.shown = [report, message];  // drawn again in the other language
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
  if (response.ok) {
    showReport(box, data, "");
    form.dataset.basis = data.basis || "";
    form.querySelector("button.commit").disabled = !dryRun;
  } else {
    if (data.report) showReport(box, data.report, data.detail);
    else { box.innerHTML = `<p class="message">${esc(data.detail || response.status)}</p>`; }
    box.dataset.state = "refused";
    form.querySelector("button.commit").disabled = true;
  }
}

document.querySelectorAll("form.upload").forEach((form) => {
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    upload(form, event.submitter?.value !== "false").catch((error) => {
      form.parentElement.querySelector(".report").textContent = error.message;
    });
  });
  form.querySelector("input[type=file]").addEventListener("change", () => {
    form.querySelector("button.commit").disabled = true;  // a new file is checked before it is imported
  });
});

gridgov.setup(LABELS, async () => {
  document.querySelectorAll(".report").forEach((box) => {
    if (box.shown) { const state = box.dataset.state; showReport(box, ...box.shown); box.dataset.state = state; }
  });
});
