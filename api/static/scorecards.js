// gridgov scorecards page (绩效考核, issue 17 §3): per grid worker and per grid of the caller's area over a period,
// the raw measures, the shares of the workload, the difficulty factor, the composite and the rank within the
// community (GET /api/scorecards; definitions and formula from the same answer, spatial/analysis/scorecards.py), and
// the exports for the assessment (GET /api/scorecards/export?format=xlsx|csv).
"use strict";
const LABELS = {
  zh: { title: "绩效考核", from: "起始日", to: "截止日", division: "区划代码", show: "查询", export_xlsx: "导出 Excel",
        export_csv: "导出 CSV", workers: "网格员", grids: "网格", definitions: "指标口径", who: "网格员",
        grid: "网格", none: "本期无数据", coverage: "专项覆盖" },
  en: { title: "Scorecards", from: "From", to: "To", division: "Division code", show: "Show",
        export_xlsx: "Export Excel", export_csv: "Export CSV", workers: "Grid workers", grids: "Grids",
        definitions: "Definitions", who: "Grid worker", grid: "Grid", none: "Nothing in this period",
        coverage: "Campaign coverage" },
};
const { t, esc, request } = gridgov;
// the columns of the tables (every measure and score is in the definitions and the export)
const MEASURES = ["households", "households_visited", "persons_visited", "campaign_visited", "lanes_covered",
                  "cases_found", "cases_due", "on_time_rate", "avg_satisfaction", "tasks_done"];
const SCORES = ["visit_share", "lane_share", "on_time_rate", "task_share", "difficulty", "composite", "rank"];
let last = null;

const say = (text) => { document.getElementById("message").textContent = text || ""; };
const value = (id) => document.getElementById(id).value.trim();
const label = (c) => (gridgov.state.lang === "zh" ? c.zh : c.en);
const num = (v) => (v === null || v === undefined ? "–"
  : typeof v === "number" && !Number.isInteger(v) ? v.toFixed(v < 2 ? 3 : 1) : String(v));

function query() {
  const q = new URLSearchParams({ from: value("from"), to: value("to") });
  if (value("division")) q.set("division", value("division"));
  return q;
}

function table(id, cards, first) {
  const cols = Object.fromEntries([...last.measures, ...last.scores.map((c) => ({ ...c, score: true }))]
    .map((c) => [(c.score ? "s:" : "m:") + c.key, c]));
  const heads = [...MEASURES.map((k) => cols["m:" + k]), ...SCORES.map((k) => cols["s:" + k])];
  document.querySelector(`#${id} thead`).innerHTML = `<tr><th>${esc(first)}</th>${heads.map((c) =>
    `<th title="${esc(c.definition)}">${esc(label(c))}</th>`).join("")}</tr>`;
  document.querySelector(`#${id} tbody`).innerHTML = cards.length ? cards.map((card) =>
    `<tr data-key="${esc(card.key)}">
      <td>${esc(card.label || card.key)} <small>${esc(card.key)}</small></td>
      ${MEASURES.map((k) => `<td class="${k}">${esc(num(card.measures[k]))}${k === "campaign_visited" ?
        ` / ${esc(num(card.measures.campaign_targets))}` : ""}</td>`).join("")}
      ${SCORES.map((k) => `<td class="${k}">${esc(num(card.scores[k]))}</td>`).join("")}</tr>`).join("")
    : `<tr><td colspan="${heads.length + 1}">${esc(t("none"))}</td></tr>`;
}

function render() {
  if (!last) return;
  table("workers", last.workers, t("who"));
  table("grids", last.grids, t("grid"));
  document.getElementById("formula").textContent = last.formula;
  document.querySelector("#definitions dl").innerHTML = [...last.measures, ...last.scores].map((c) =>
    `<dt>${esc(c.zh)} · ${esc(c.en)}</dt><dd>${esc(c.definition)}</dd>`).join("");
}

async function load() {
  say("");
  try {
    last = (await request("GET", `/api/scorecards?${query()}`)).data;
    render();
  } catch (error) { say(error.message); }
}

async function download(format) {
  say("");
  const q = query();
  q.set("format", format);
  const init = { headers: { Authorization: "Bearer " + sessionStorage.getItem("gridgov.token") } };
  const response = await fetch(`/api/scorecards/export?${q}`, init);
  if (!response.ok) { say((await response.json().catch(() => ({}))).detail || String(response.status)); return; }
  const link = document.createElement("a");
  link.href = URL.createObjectURL(await response.blob());
  link.download = `scorecards-${value("from")}-${value("to")}.${format}`;
  link.click();
  URL.revokeObjectURL(link.href);
}

document.getElementById("query").addEventListener("submit", (event) => { event.preventDefault(); load(); });
document.getElementById("export-xlsx").addEventListener("click", () => download("xlsx"));
document.getElementById("export-csv").addEventListener("click", () => download("csv"));

gridgov.setup(LABELS, async () => {
  const params = new URLSearchParams(location.search);
  const today = new Date().toISOString().slice(0, 10);
  if (!value("to")) document.getElementById("to").value = params.get("to") || today;
  if (!value("from")) document.getElementById("from").value = params.get("from") || value("to").slice(0, 8) + "01";
  if (!value("division") && params.get("division")) document.getElementById("division").value = params.get("division");
  await load();
});
