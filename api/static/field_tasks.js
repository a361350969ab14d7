// gridgov field page, tasks panel (任务, issue 17 §1): the tasks handed to the signed-in team member (a home-isolation
// delivery, a care visit, a screening follow-up), due day first, each marked done or undone with a tap. Names come
// masked from the server (GET /api/tasks?mine=true). Grid workers and planners hand a task for the household open in
// the visit sheet (#visit's data-household, set by field.js) to a member of its team (the teams of their grids are
// offered). Kept apart from field.js; registered with gridgov.part() before field.js calls gridgov.setup().
"use strict";
(() => {
  const LABELS = {
    zh: { tasks_title: "我的任务", tasks_none: "暂无任务", task_due: "截止", task_overdue: "已逾期", task_done: "已完成",
          task_mark: "完成", task_unmark: "撤销完成", task_unit: "单元", task_room: "室",
          kind_isolation_delivery: "居家隔离送物资", kind_care_visit: "独居老人关爱探访",
          kind_screening_followup: "排查随访", kind_other: "其他任务", task_new: "派发任务（送物资、关爱探访、随访）",
          task_kind: "任务", task_assignee: "执行人", task_note: "说明", task_send: "派发", task_sent: "已派发给 {who}" },
    en: { tasks_title: "My tasks", tasks_none: "No tasks", task_due: "due", task_overdue: "overdue", task_done: "done",
          task_mark: "Done", task_unmark: "Undo", task_unit: "unit", task_room: "room",
          kind_isolation_delivery: "Home-isolation delivery", kind_care_visit: "Care visit (elderly living alone)",
          kind_screening_followup: "Screening follow-up", kind_other: "Other task",
          task_new: "Hand out a task (delivery, care visit, follow-up)", task_kind: "Task", task_assignee: "Assignee",
          task_note: "Note", task_send: "Hand out", task_sent: "Handed to {who}" },
  };
  const { t, esc, api, request } = gridgov;
  const panel = () => document.getElementById("tasks");

  function place(task) {
    const building = task.building_name || task.building_code || "";
    const room = task.room ? ` · ${esc(t("task_unit"))} ${esc(task.unit)} · ${esc(task.room)} ${esc(t("task_room"))}` : "";
    return `${esc(building)}${room}${task.head_name ? ` · ${esc(task.head_name)}` : ""}${task.person_name ? ` · ${esc(task.person_name)}` : ""}`;
  }

  function item(task) {
    const state = task.done_at ? "done" : task.overdue ? "overdue" : "open";
    const badge = task.done_at ? t("task_done") : task.overdue ? t("task_overdue") : "";
    return `<li class="task ${state}" data-id="${task.id}">
      <div><b>${esc(t("kind_" + task.kind))}</b> · ${esc(t("task_due"))} ${esc(task.due)}
        ${badge ? `<span class="badge${task.done_at ? "" : " warn"}">${esc(badge)}</span>` : ""}</div>
      <div class="note">${place(task)}</div>
      ${task.note ? `<div class="note">${esc(task.note)}</div>` : ""}
      <button type="button" class="task-mark" data-done="${task.done_at ? "false" : "true"}">
        ${esc(task.done_at ? t("task_unmark") : t("task_mark"))}</button>
    </li>`;
  }

  async function show() {
    const box = panel();
    if (!box) return;
    let tasks;
    try { tasks = await api("/api/tasks?mine=true&limit=100"); } catch (error) { box.hidden = true; return; }
    box.hidden = false;
    box.querySelector("ol").innerHTML = tasks.length ? tasks.map(item).join("")
      : `<li class="note">${esc(t("tasks_none"))}</li>`;
    box.dataset.tasks = String(tasks.length);
    box.dataset.open = String(tasks.filter((x) => !x.done_at).length);
  }

  document.addEventListener("click", async (event) => {
    const button = event.target.closest("#tasks button.task-mark");
    if (!button) return;
    button.disabled = true;
    try {
      await request("PATCH", `/api/tasks/${button.closest("li").dataset.id}`, { done: button.dataset.done === "true" });
      await show();
    } catch (error) {
      panel().querySelector(".task-message").textContent = error.message;
      button.disabled = false;
    }
  });

  const KINDS = ["isolation_delivery", "care_visit", "screening_followup", "other"];
  const HANDERS = ["grid_worker", "planner", "admin"];
  const $ = (id) => document.getElementById(id);

  async function offerTeam() {  // the members of the caller's grids' teams, as suggestions for the assignee
    const checks = await api("/api/team/checks");
    const teams = await Promise.all(checks.grids.slice(0, 5).map((g) => api(`/api/team/grids/${g.code}`)));
    const seen = new Map();
    for (const team of teams) for (const m of team.members) seen.set(m.username, m.display_name || m.username);
    $("task-team").innerHTML = [...seen].map(([name, shown]) => `<option value="${esc(name)}">${esc(shown)}</option>`).join("");
  }

  async function start(me) {
    await show();
    const form = $("task-new");
    if (!form) return;
    form.hidden = !HANDERS.includes(me.role);
    if (form.hidden) return;
    $("task-kind").innerHTML = KINDS.map((k) => `<option value="${k}">${esc(t("kind_" + k))}</option>`).join("");
    const tomorrow = new Date(Date.now() + 86400000);
    $("task-due").value = `${tomorrow.getFullYear()}-${String(tomorrow.getMonth() + 1).padStart(2, "0")}-${String(tomorrow.getDate()).padStart(2, "0")}`;
    await offerTeam().catch(() => {});
  }

  document.addEventListener("click", async (event) => {
    if (!event.target.closest("#task-send")) return;
    const who = $("task-assignee").value.trim();
    $("task-sent").textContent = "";
    try {
      await request("POST", "/api/tasks", { kind: $("task-kind").value, assignee: who, due: $("task-due").value,
        household_id: Number($("visit").dataset.household), note: $("task-note").value.trim() || null });
      $("task-sent").textContent = t("task_sent").replace("{who}", who);
      $("task-note").value = "";
      await show();
    } catch (error) { $("task-sent").textContent = error.message; }
  });

  gridgov.part(LABELS, start);
})();
