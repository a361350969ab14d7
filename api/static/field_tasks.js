// gridgov field page, tasks panel (任务, issue 17 §1): the tasks handed to the signed-in team member (a home-isolation
// delivery, a care visit, a screening follow-up), due day first, each marked done or undone with a tap. Names come
// masked from the server (GET /api/tasks?mine=true). Kept apart from field.js; registered with gridgov.part()
// before field.js calls gridgov.setup().
"use strict";
(() => {
  const LABELS = {
    zh: { tasks_title: "我的任务", tasks_none: "暂无任务", task_due: "截止", task_overdue: "已逾期", task_done: "已完成",
          task_mark: "完成", task_unmark: "撤销完成", task_unit: "单元", task_room: "室",
          kind_isolation_delivery: "居家隔离送物资", kind_care_visit: "独居老人关爱探访",
          kind_screening_followup: "排查随访", kind_other: "其他任务" },
    en: { tasks_title: "My tasks", tasks_none: "No tasks", task_due: "due", task_overdue: "overdue", task_done: "done",
          task_mark: "Done", task_unmark: "Undo", task_unit: "unit", task_room: "room",
          kind_isolation_delivery: "Home-isolation delivery", kind_care_visit: "Care visit (elderly living alone)",
          kind_screening_followup: "Screening follow-up", kind_other: "Other task" },
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

  gridgov.part(LABELS, show);
})();
