// gridgov team page (网格团队, issue 17 §1): a grid's team (who, duty, what they serve, contact), its micro-grids
// with their building heads, and the checks of the caller's area (grids short of workers, without a leader or a
// police officer, micro-grids without a building head). Planners put people on the team and end assignments.
"use strict";
const DUTIES = ["leader", "worker", "police", "medical", "specialist", "building_head", "unit_head", "volunteer"];
const LABELS = {
  zh: { title: "网格团队", grid: "网格", members: "团队成员", who: "成员", duty: "职责", assigned: "负责",
        contact: "联系电话", since: "起始", micro_grids: "微网格与楼栋长", assign: "分配成员", target: "对象",
        kind_grid: "本网格", kind_micro_grid: "微网格 (编号)", kind_building: "楼栋 (编码)", unit: "单元",
        assign_go: "分配", checks: "配备检查", short: "网格员不足两人的网格", no_leader: "没有网格长的网格",
        no_police: "没有网格警员的网格", no_head: "没有楼栋长的微网格", none_found: "无", end: "结束",
        end_confirm: "结束此分工？（记录保留）", target_hint: "微网格编号或楼栋编码", workers: "名网格员",
        micro: "微网格", buildings: "栋楼", no_heads: "尚无楼栋长", summary: "共检查 {n} 个网格",
        at_grid: "网格", at_micro_grid: "微网格", at_building: "楼栋", empty: "该网格还没有团队成员",
        duty_leader: "网格长", duty_worker: "网格员", duty_police: "网格警员", duty_medical: "医护人员",
        duty_specialist: "部门专员", duty_building_head: "楼栋长", duty_unit_head: "单元长", duty_volunteer: "志愿者" },
  en: { title: "Grid team", grid: "Grid", members: "Team members", who: "Member", duty: "Duty", assigned: "Serves",
        contact: "Contact", since: "Since", micro_grids: "Micro-grids and building heads", assign: "Assign a member",
        target: "Target", kind_grid: "This grid", kind_micro_grid: "Micro-grid (number)",
        kind_building: "Building (code)", unit: "Unit", assign_go: "Assign", checks: "Team checks",
        short: "Grids with fewer than two grid workers", no_leader: "Grids without a leader",
        no_police: "Grids without a police officer", no_head: "Micro-grids without a building head",
        none_found: "none", end: "End", end_confirm: "End this assignment? (It stays in the history.)",
        target_hint: "micro-grid number or building code", workers: "grid workers", micro: "Micro-grid",
        buildings: "buildings", no_heads: "no building head yet", summary: "{n} grids checked", at_grid: "grid",
        at_micro_grid: "micro-grid", at_building: "building", empty: "This grid has no team members yet",
        duty_leader: "Grid leader", duty_worker: "Grid worker", duty_police: "Police officer",
        duty_medical: "Medical staff", duty_specialist: "Department specialist", duty_building_head: "Building head",
        duty_unit_head: "Unit head", duty_volunteer: "Volunteer" },
};
const { t, esc, api, request } = gridgov;
let me = null, micro = [];

const say = (text) => { document.getElementById("message").textContent = text || ""; };
const day = (iso) => (iso ? new Date(iso).toLocaleDateString(gridgov.state.lang === "zh" ? "zh-CN" : "en-GB") : "");
const chosen = () => document.getElementById("grid").value;

async function showTeam() {
  const code = chosen();
  const body = document.querySelector("#members tbody");
  if (!code) { body.innerHTML = ""; return; }
  const team = await api(`/api/team/grids/${code}`);
  micro = team.micro_grids;
  const manage = me.role === "planner" || me.role === "admin";
  body.innerHTML = team.members.length ? team.members.map((m) => `<tr class="${esc(m.duty)}">
      <td>${m.display_name ? `${esc(m.display_name)} <small>${esc(m.username)}</small>` : esc(m.username)}</td>
      <td>${esc(t("duty_" + m.duty))}</td>
      <td>${esc(t("at_" + m.target_kind))} ${esc(m.target)}${m.unit ? ` · ${esc(m.unit)}` : ""}</td>
      <td>${m.contact ? `<a href="tel:${esc(m.contact)}">${esc(m.contact)}</a>` : ""}</td>
      <td>${esc(day(m.valid_from))}</td>
      <td>${manage && m.assignment_id ? `<button type="button" class="end" data-id="${m.assignment_id}">${esc(t("end"))}</button>` : ""}</td>
    </tr>`).join("") : `<tr><td colspan="6">${esc(t("empty"))}</td></tr>`;
  document.getElementById("micro").innerHTML = micro.map((g) => `<li data-seq="${g.seq}">${esc(t("micro"))} ${g.seq}
      ${g.name ? esc(g.name) : ""} · ${g.buildings} ${esc(t("buildings"))} ·
      ${g.heads.length ? esc(g.heads.join("、")) : `<em>${esc(t("no_heads"))}</em>`}</li>`).join("");
  document.body.dataset.members = String(team.members.length);
}

function checkList(id, items, text) {
  document.getElementById(id).innerHTML = items.length
    ? items.map((item) => `<li><button type="button" data-grid="${esc(item.grid)}">${esc(text(item))}</button></li>`).join("")
    : `<li class="ok">${esc(t("none_found"))}</li>`;
}

async function showChecks() {
  const checks = await api("/api/team/checks");
  const select = document.getElementById("grid");
  const keep = select.value;
  select.innerHTML = checks.grids.map((g) => `<option value="${esc(g.code)}">${esc(g.code)} ${esc(g.name || "")}</option>`).join("");
  if (keep && checks.grids.some((g) => g.code === keep)) select.value = keep;
  document.getElementById("checks-summary").textContent = t("summary").replace("{n}", checks.grids.length);
  checkList("check-short", checks.short_of_workers.map((g) => ({ grid: g.grid_code, ...g })),
            (g) => `${g.grid_code}: ${g.workers} ${t("workers")}`);
  checkList("check-leader", checks.without_leader.map((c) => ({ grid: c })), (g) => g.grid);
  checkList("check-police", checks.without_police.map((c) => ({ grid: c })), (g) => g.grid);
  checkList("check-head", checks.micro_grids_without_head.map((m) => ({ grid: m.grid_code, ...m })),
            (m) => `${m.grid_code} · ${t("micro")} ${m.seq}`);
  document.body.dataset.checked = String(checks.grids.length);
}

async function refresh() {
  say("");
  try { await showChecks(); await showTeam(); } catch (error) { say(error.message); }
}

document.getElementById("grid").addEventListener("change", () => showTeam().catch((e) => say(e.message)));
document.getElementById("checks").addEventListener("click", (event) => {
  const button = event.target.closest("button[data-grid]");
  if (!button) return;
  document.getElementById("grid").value = button.dataset.grid;
  showTeam().catch((e) => say(e.message));
});
document.querySelector("#members tbody").addEventListener("click", async (event) => {
  const button = event.target.closest("button.end");
  if (!button || !window.confirm(t("end_confirm"))) return;
  try { await request("DELETE", `/api/team/assignments/${button.dataset.id}`); await refresh(); }
  catch (error) { say(error.message); }
});
document.getElementById("assign").addEventListener("submit", async (event) => {
  event.preventDefault();
  say("");
  const value = (id) => document.getElementById(id).value.trim();
  const body = { username: value("assign-user"), duty: value("assign-duty") };
  const kind = value("assign-kind");
  if (kind === "grid") body.grid_code = chosen();
  else if (kind === "building") body.building_code = value("assign-target");
  else {
    const group = micro.find((g) => String(g.seq) === value("assign-target"));
    body.micro_grid_id = group ? group.id : 0;
  }
  if (value("assign-unit")) body.unit = value("assign-unit");
  if (value("assign-contact")) body.contact = value("assign-contact");
  try {
    await request("POST", "/api/team/assignments", body);
    event.target.reset();
    await refresh();
  } catch (error) { say(error.message); }
});

gridgov.setup(LABELS, async (who) => {
  me = who;
  document.getElementById("assign").hidden = !(me.role === "planner" || me.role === "admin");
  document.getElementById("assign-duty").innerHTML = DUTIES.map((d) => `<option value="${d}">${esc(t("duty_" + d))}</option>`).join("");
  document.getElementById("assign-target").placeholder = t("target_hint");
  await refresh();
});
