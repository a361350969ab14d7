// "Who handles this point" (谁来管, issue 16 §2) on the overview map: a click anywhere on the map asks
// GET /api/one-network/who-handles for the clicked position (Leaflet gives it in WGS 84, whatever the basemap) and
// shows the grid, its workers and every department's grid and contact in the #who-handles panel (names and phones
// come masked from the server). Loaded after map.js, whose `map` it uses; its labels are its own.
"use strict";
(() => {
  const LABELS = {
    zh: { title: "谁来管", grid: "网格", none: "不在任何网格内", workers: "网格员", leader: "网格长", worker: "网格员",
          departments: "部门网格", no_departments: "无部门网格", office: "办公电话", contact: "联系人" },
    en: { title: "Who handles this point", grid: "Grid", none: "In no grid", workers: "Grid workers", leader: "leader",
          worker: "worker", departments: "Department grids", no_departments: "No department grid",
          office: "Office", contact: "Contact" },
  };
  const { esc, api, state } = gridgov;
  const t = (key) => LABELS[state.lang][key] ?? key;
  const panel = document.createElement("aside");
  panel.id = "who-handles";
  panel.setAttribute("aria-live", "polite");
  panel.hidden = true;
  document.getElementById("map").after(panel);

  function show(h) {
    const grid = h.grid ? `<b>${esc(h.grid.name)}</b> ${esc(h.grid.code)} · ${esc(h.grid.community_name || h.grid.community_code)}`
                        : esc(t("none"));
    const workers = h.workers.map((w) => `${esc(w.name)} (${esc(t(w.duty))})`).join("、") || "—";
    const departments = h.departments.map((d) =>
      `<li data-code="${esc(d.code)}"><b>${esc(d.department_name)}</b> · ${esc(d.layer)} ${esc(d.name)}` +
      (d.office_phone ? ` · ${esc(t("office"))} ${esc(d.office_phone)}` : "") +
      (d.contact_name ? ` · ${esc(t("contact"))} ${esc(d.contact_name)} ${esc(d.contact_phone || "")}` : "") + "</li>").join("");
    panel.innerHTML = `<h3>${esc(t("title"))}</h3><div>${esc(t("grid"))}: <span id="who-grid">${grid}</span></div>` +
      `<div>${esc(t("workers"))}: <span id="who-workers">${workers}</span></div>` +
      `<div>${esc(t("departments"))}:</div>` + (departments ? `<ul id="who-departments">${departments}</ul>` :
      `<div id="who-departments">${esc(t("no_departments"))}</div>`);
    panel.hidden = false;
    document.body.dataset.whoHandles = String(h.departments.length);
  }

  // On the map's container, not map.on("click"): a click on a drawn feature (canvas) goes to that feature's popup
  // and never reaches the map's own click event. Clicks on controls and popups stop before the container.
  map.getContainer().addEventListener("click", (e) => {
    if (map.dragging && map.dragging.moved()) return;  // the end of a drag is no click
    const at = map.mouseEventToLatLng(e);
    api(`/api/one-network/who-handles?x=${at.lng}&y=${at.lat}`).then(show).catch(console.error);
  });
})();
